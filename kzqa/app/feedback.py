"""👍/👎 feedback from the chat, kept in a local SQLite file or in PostgreSQL, exported as JSONL.

:func:`open_feedback` picks the place: a ``postgresql://`` URL (given, or ``$KZQA_FEEDBACK_URL``,
else ``$KZQA_DATABASE_URL``) → the table ``kzqa.feedback`` in that database, shared by every app
replica; otherwise the SQLite file ``$KZQA_FEEDBACK_DB``, else
``~/.local/share/kzqa/feedback.sqlite3`` (outside the repository). Every record holds the
question, the resolved query, the answer, the cited passage ids, the mode, the vote and the time
(UTC, ISO 8601). A vote given with an ``answer_id`` (the chat gives each answer one) replaces the
earlier vote on that answer: 👍 → 👎 → 👍 leaves one 'up'.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

_SCHEMA = """CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
    question TEXT NOT NULL,
    resolved_query TEXT NOT NULL,
    answer TEXT NOT NULL,
    passage_ids TEXT NOT NULL,
    mode TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    answer_id TEXT
)"""
_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS feedback_answer ON feedback (answer_id)"


FEEDBACK_URL_ENV = "KZQA_FEEDBACK_URL"
_COLUMNS = ("time", "vote", "question", "resolved_query", "answer", "passage_ids", "mode", "abstained")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_vote(vote: str) -> None:
    if vote not in ("up", "down"):
        raise ValueError("vote must be 'up' or 'down'")


def default_path() -> Path:
    env = os.environ.get("KZQA_FEEDBACK_DB")
    return Path(env) if env else Path.home() / ".local" / "share" / "kzqa" / "feedback.sqlite3"


class FeedbackStore:
    """The feedback table in SQLite; safe to call from the app's worker threads."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)
            if "answer_id" not in {row[1] for row in db.execute("PRAGMA table_info(feedback)")}:
                db.execute("ALTER TABLE feedback ADD COLUMN answer_id TEXT")  # a file from before votes were replaced
            db.execute(_INDEX)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, *, vote: str, question: str, resolved_query: str, answer: str,
               passage_ids: list[str], mode: str, abstained: bool, answer_id: str | None = None) -> int:
        """Store one vote ('up' or 'down'), replacing an earlier vote with the same ``answer_id``;
        returns its row id."""
        _check_vote(vote)
        with self._lock, self._connect() as db:
            db.execute(
                f"INSERT INTO feedback ({', '.join(_COLUMNS)}, answer_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (answer_id) DO UPDATE SET vote = excluded.vote, time = excluded.time",
                (_now(), vote, question, resolved_query, answer, json.dumps(passage_ids), mode, int(abstained),
                 answer_id))
            if answer_id is None:
                return int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
            return int(db.execute("SELECT id FROM feedback WHERE answer_id = ?", (answer_id,)).fetchone()[0])

    def rows(self) -> list[dict]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT * FROM feedback ORDER BY id")]
        for row in rows:
            row["passage_ids"] = json.loads(row["passage_ids"])
            row["abstained"] = bool(row["abstained"])
        return rows

    def export_jsonl(self, out) -> int:
        """Write every record as one JSON line to the open text file ``out``; returns the count."""
        return export_jsonl(self.rows(), out)


def export_jsonl(rows: list[dict], out) -> int:
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


_PG_SCHEMA = """CREATE TABLE IF NOT EXISTS kzqa.feedback (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time text NOT NULL,
    vote text NOT NULL CHECK (vote IN ('up', 'down')),
    question text NOT NULL,
    resolved_query text NOT NULL,
    answer text NOT NULL,
    passage_ids jsonb NOT NULL,
    mode text NOT NULL,
    abstained boolean NOT NULL
)"""
_PG_MIGRATE = ("ALTER TABLE kzqa.feedback ADD COLUMN IF NOT EXISTS answer_id text",
               "CREATE UNIQUE INDEX IF NOT EXISTS feedback_answer ON kzqa.feedback (answer_id)")


class PgFeedbackStore:
    """The same table in PostgreSQL (``kzqa.feedback``): one place for every app replica; each
    vote is one INSERT, so concurrent writers lose nothing. The URL must reach the primary."""

    def __init__(self, url: str):
        from ..stores.postgres import connect

        self.url = url
        self._connect = lambda: connect(url, autocommit=False, vectors=False)
        with self._connect() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x6B7A7166,))  # one creator at a time
            conn.execute("CREATE SCHEMA IF NOT EXISTS kzqa")
            conn.execute(_PG_SCHEMA)
            for statement in _PG_MIGRATE:
                conn.execute(statement)

    def record(self, *, vote: str, question: str, resolved_query: str, answer: str,
               passage_ids: list[str], mode: str, abstained: bool, answer_id: str | None = None) -> int:
        """Store one vote ('up' or 'down'), replacing an earlier vote with the same ``answer_id``;
        returns its row id."""
        import psycopg
        from psycopg.types.json import Jsonb

        from ..stores.postgres import IndexProblem, redact

        _check_vote(vote)
        try:
            with self._connect() as conn:
                return int(conn.execute(
                    f"INSERT INTO kzqa.feedback ({', '.join(_COLUMNS)}, answer_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (answer_id) DO UPDATE "
                    "SET vote = excluded.vote, time = excluded.time RETURNING id",
                    (_now(), vote, question, resolved_query, answer, Jsonb(passage_ids), mode, bool(abstained),
                     answer_id)).fetchone()[0])
        except psycopg.Error as exc:  # e.g. a read-only replica
            raise IndexProblem(f"the vote could not be stored in {redact(self.url)}: "
                               f"{str(exc).strip().splitlines()[0]}") from exc

    def rows(self) -> list[dict]:
        with self._connect() as conn:
            cur = conn.execute(f"SELECT id, {', '.join(_COLUMNS)}, answer_id FROM kzqa.feedback ORDER BY id")
            names = [c.name for c in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def export_jsonl(self, out) -> int:
        """Write every record as one JSON line to the open text file ``out``; returns the count."""
        return export_jsonl(self.rows(), out)


def resolve_target(target: str | Path | None = None) -> str | Path:
    """Where feedback goes: ``target`` if given, else $KZQA_FEEDBACK_URL, else
    $KZQA_DATABASE_URL, else the default SQLite file; a postgresql:// URL as a string, a SQLite
    file as a Path."""
    from ..stores.postgres import ENV_URL, is_database_url

    if target is None:
        target = os.environ.get(FEEDBACK_URL_ENV) or os.environ.get(ENV_URL) or default_path()
    return str(target) if is_database_url(str(target)) else Path(target)


def open_feedback(target: str | Path | None = None):
    """The feedback store for ``target`` (see :func:`resolve_target`): :class:`PgFeedbackStore`
    for a postgresql:// URL, :class:`FeedbackStore` for a SQLite file."""
    target = resolve_target(target)
    return PgFeedbackStore(target) if isinstance(target, str) else FeedbackStore(target)

"""👍/👎 feedback from the chat, kept in a local SQLite file and exported as JSONL.

The file is ``$KZQA_FEEDBACK_DB`` if set, else ``~/.local/share/kzqa/feedback.sqlite3`` (outside
the repository). Every record holds the question, the resolved query, the answer, the cited
passage ids, the mode, the vote and the time (UTC, ISO 8601).
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
    abstained INTEGER NOT NULL
)"""


def default_path() -> Path:
    env = os.environ.get("KZQA_FEEDBACK_DB")
    return Path(env) if env else Path.home() / ".local" / "share" / "kzqa" / "feedback.sqlite3"


class FeedbackStore:
    """Append-only feedback table; safe to call from the app's worker threads."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, *, vote: str, question: str, resolved_query: str, answer: str,
               passage_ids: list[str], mode: str, abstained: bool) -> int:
        """Store one vote ('up' or 'down'); returns its row id."""
        if vote not in ("up", "down"):
            raise ValueError("vote must be 'up' or 'down'")
        with self._lock, self._connect() as db:
            cur = db.execute(
                "INSERT INTO feedback (time, vote, question, resolved_query, answer, passage_ids, mode, abstained)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (datetime.now(timezone.utc).isoformat(timespec="seconds"), vote, question, resolved_query,
                 answer, json.dumps(passage_ids), mode, int(abstained)))
            return int(cur.lastrowid)

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
        rows = self.rows()
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return len(rows)

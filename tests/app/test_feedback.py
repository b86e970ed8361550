"""Feedback storage and its JSONL export (real SQLite file, real CLI)."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from kzqa.app.feedback import FeedbackStore


def test_record_and_export(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    store.record(vote="up", question="Q?", resolved_query="Q? (x)", answer="A [1]", passage_ids=["p1"],
                 mode="hybrid", abstained=False)
    store.record(vote="down", question="Q2?", resolved_query="Q2?", answer="none", passage_ids=[],
                 mode="lexical", abstained=True)
    with pytest.raises(ValueError):
        store.record(vote="meh", question="", resolved_query="", answer="", passage_ids=[], mode="", abstained=False)
    rows = FeedbackStore(tmp_path / "fb.sqlite3").rows()
    assert [r["vote"] for r in rows] == ["up", "down"] and rows[0]["passage_ids"] == ["p1"]
    assert rows[1]["abstained"] is True and rows[0]["time"].endswith("+00:00")
    result = run_cli("feedback", "export", "--db", str(tmp_path / "fb.sqlite3"))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and [r["question"] for r in lines] == ["Q?", "Q2?"]
    out = tmp_path / "fb.jsonl"
    assert run_cli("feedback", "export", "--db", str(tmp_path / "fb.sqlite3"), "--out", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 2


def test_export_errors_are_one_line(tmp_path):
    missing = run_cli("feedback", "export", "--db", str(tmp_path / "none.sqlite3"))
    assert missing.returncode == 1 and missing.stderr.startswith("error: no feedback database")
    (tmp_path / "bad.sqlite3").write_text("not a database")
    bad = run_cli("feedback", "export", "--db", str(tmp_path / "bad.sqlite3"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_a_new_vote_on_the_same_answer_replaces_the_earlier_one(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    record = dict(question="Q?", resolved_query="Q?", answer="A [1]", passage_ids=["p1"], mode="hybrid",
                  abstained=False)
    first = store.record(vote="up", answer_id="a1", **record)
    assert store.record(vote="down", answer_id="a1", **record) == first
    assert store.record(vote="up", answer_id="a1", **record) == first
    store.record(vote="down", answer_id="a2", **record)
    store.record(vote="down", **record)  # without an answer id: kept as a vote of its own
    store.record(vote="down", **record)
    assert [(r["answer_id"], r["vote"]) for r in store.rows()] == [("a1", "up"), ("a2", "down"), (None, "down"),
                                                                   (None, "down")]


def test_a_feedback_file_from_before_answer_ids_is_upgraded_in_place(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, vote TEXT NOT NULL,"
                   " question TEXT NOT NULL, resolved_query TEXT NOT NULL, answer TEXT NOT NULL, passage_ids TEXT NOT"
                   " NULL, mode TEXT NOT NULL, abstained INTEGER NOT NULL)")
        db.execute("INSERT INTO feedback (time, vote, question, resolved_query, answer, passage_ids, mode, abstained)"
                   " VALUES ('t', 'up', 'old?', 'old?', 'a', '[]', 'hybrid', 0)")
    store = FeedbackStore(path)
    store.record(vote="down", question="Q?", resolved_query="Q?", answer="A", passage_ids=[], mode="hybrid",
                 abstained=False, answer_id="x")
    assert [(r["question"], r["answer_id"]) for r in store.rows()] == [("old?", None), ("Q?", "x")]

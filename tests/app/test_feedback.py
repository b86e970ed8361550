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

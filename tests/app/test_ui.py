"""The running app's named endpoints, called over HTTP by gradio_client."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(running_app):
    from gradio_client import Client

    return Client(running_app, verbose=False)


def test_ask_endpoint(client):
    result = client.predict("How tall is the Bayterek tower?", 5, "hybrid", api_name="/ask")
    assert result["status"] == "answered" and not result["abstained"]
    assert "97 meters" in result["text"] and "[1]" in result["text"]
    cite = result["citations"][0]
    assert {"doc_id", "title", "section", "passage_id", "start", "end", "score", "highlights"} <= set(cite)
    s, e = cite["highlights"][0]
    assert cite["text"][s:e] in result["text"]


def test_ask_endpoint_abstains(client):
    result = client.predict("What is the capital of Peru?", 5, "hybrid", api_name="/ask")
    assert result["status"] == "not_covered"
    assert result["abstained"] and result["citations"] == [] and result["related"]


def test_ask_endpoint_carries_the_partial_state(client):
    result = client.predict("How much did CNPC pay to acquire PetroKazakhstan in 2005?", 5, "hybrid", api_name="/ask")
    assert result["status"] == "partial" and result["abstained"]
    assert result["summary"].startswith("The documents discuss") and result["citations"]


def test_search_endpoint(client):
    result = client.predict("Atajurt Eriktileri", 3, "hybrid", api_name="/search")
    hits = result["hits"]
    assert len(hits) == 3 and "Atajurt" in hits[0]["text"]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]


def test_bad_input_is_a_clear_error(client):
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", 5, "hybrid", api_name="/ask")
    with pytest.raises(Exception, match="unknown mode"):
        client.predict("Bayterek", 5, "telepathy", api_name="/search")


def test_page_binds_loopback_only(running_app):
    assert running_app.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("data, says", [
    (["Bayterek", "5", "hybrid"], "k must be a whole number"),
    (["Bayterek", 2.5, "hybrid"], "k must be a whole number"),
    (["Bayterek", None, "hybrid"], "k must be a whole number"),
    (["Bayterek", 5, 123], "unknown mode"),
    (["\ud800\u0000", 5, "hybrid"], "empty"),
    ([None, 5, "hybrid"], "must be text"),
])
def test_bad_http_requests_get_the_reason_never_internal_text(running_app, data, says):
    import json

    import httpx

    for endpoint in ("ask", "search"):
        body = json.dumps({"data": data}, ensure_ascii=True)  # a lone surrogate travels as the escape \ud800
        response = httpx.post(f"{running_app}gradio_api/run/{endpoint}", content=body,
                              headers={"Content-Type": "application/json"}, timeout=60)
        text = response.text
        assert says in text, text
        assert "Traceback" not in text and "TypeError" not in text and "AttributeError" not in text


def test_a_whole_float_k_from_json_is_accepted(running_app):
    import httpx

    response = httpx.post(f"{running_app}gradio_api/run/search", json={"data": ["Bayterek tower", 3.0, "hybrid"]},
                          timeout=60)
    assert response.status_code == 200 and len(response.json()["data"][0]["hits"]) == 3


def _one_line_error(response) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    error = response.json()["error"]
    assert "\n" not in error and "Traceback" not in error and "object at 0x" not in error
    return error


def test_the_question_alone_is_enough(running_app):
    import httpx

    for endpoint in ("ask", "search"):
        response = httpx.post(f"{running_app}gradio_api/run/{endpoint}", json={"data": ["How tall is the Bayterek tower?"]},
                              timeout=60)
        assert response.status_code == 200, response.text
    assert "97 meters" in response.text


@pytest.mark.parametrize("body, status, says", [
    ({"data": []}, 422, "empty"),
    ({"data": ["Bayterek", 5, "hybrid", "extra"]}, 422, "at most 3"),
    ({"data": ["Bayterek"], "fn_index": 1}, 400, "fn_index"),
    ({"question": "Bayterek"}, 400, '"data" list'),
    ([1, 2], 400, '"data" list'),
    ({"data": [["a list"], 5, "hybrid"]}, 422, "must be text"),
    ({"data": ["Bayterek", {"k": 5}, "hybrid"]}, 422, "k must be a whole number"),
])
def test_malformed_calls_get_a_4xx_and_one_line(running_app, body, status, says):
    import httpx

    for endpoint in ("ask", "search"):
        response = httpx.post(f"{running_app}gradio_api/run/{endpoint}", json=body, timeout=60)
        assert response.status_code == status and says in _one_line_error(response)


def test_bodies_that_are_not_json_and_private_functions_are_refused(running_app):
    import httpx

    response = httpx.post(f"{running_app}gradio_api/run/ask", content=b"\xff{not json", timeout=60)
    assert response.status_code == 400 and "JSON" in _one_line_error(response)
    for name in ("predict", "respond", "clear", "on_like", "lambda"):
        response = httpx.post(f"{running_app}gradio_api/run/{name}", json={"data": ["x"], "fn_index": 1}, timeout=60)
        assert response.status_code == 404 and "/gradio_api/run/ask" in _one_line_error(response)
    response = httpx.post(f"{running_app}gradio_api/run/ask", content=b"x" * (70 * 1024), timeout=60)
    assert response.status_code == 413


def test_uploads_are_refused_and_nothing_is_written(running_app, tmp_path):
    import httpx

    for path in ("gradio_api/upload", "upload"):
        response = httpx.post(f"{running_app}{path}", files={"files": ("big.bin", b"\0" * 200_000)}, timeout=60)
        assert response.status_code == 403 and "no files" in _one_line_error(response)


def test_the_server_removes_its_temporary_folder_when_stopped(tmp_path):
    import os
    import subprocess
    import sys

    import httpx
    from conftest import ROOT, free_port, wait_for_port

    temp = tmp_path / "gradio-temp"
    temp.mkdir()
    port = free_port()
    env = dict(os.environ, GRADIO_TEMP_DIR=str(temp), KZQA_FEEDBACK_DB=str(tmp_path / "fb.sqlite3"))
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        assert any(p.name.startswith("kzqa-gradio-") for p in temp.iterdir()), list(temp.iterdir())
        httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload", files={"files": ("x.bin", b"x" * 1000)}, timeout=60)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) is not None
    assert list(temp.iterdir()) == []


def test_login_attempts_are_throttled_per_client(tmp_path):
    import os
    import subprocess
    import sys

    import httpx
    from conftest import ROOT, free_port, wait_for_port

    port = free_port()
    env = dict(os.environ, KZQA_FEEDBACK_DB=str(tmp_path / "fb.sqlite3"), KZQA_AUTH="reader:right-password")
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        codes = [httpx.post(f"http://127.0.0.1:{port}/login", data={"username": "reader", "password": f"guess{i}"},
                            timeout=30).status_code for i in range(14)]
        assert 429 not in codes[:10] and codes[10:] == [429] * 4, codes
        refused = httpx.post(f"http://127.0.0.1:{port}/login", data={"username": "reader", "password": "right-password"},
                             timeout=30)
        assert refused.status_code == 429 and "wait a minute" in refused.json()["error"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_long_chat_keeps_the_last_20_turns_with_their_feedback_records():
    from kzqa.app.ui import MAX_TURNS, bounded, new_session

    history, session = [], new_session()
    for turn in range(35):
        history = history + [{"role": "user", "content": f"q{turn}"}, {"role": "assistant", "content": f"a{turn}"}]
        session["queries"].append(f"q{turn}")
        session["records"][len(history) - 1] = {"question": f"q{turn}"}
        history, session = bounded(history, session)
    assert len(history) == 2 * MAX_TURNS and history[0]["content"] == "q15" and history[-1]["content"] == "a34"
    assert session["queries"] == [f"q{t}" for t in range(15, 35)]
    assert all(history[i - 1]["content"] == r["question"] for i, r in session["records"].items())
    assert sorted(session["records"]) == list(range(1, 2 * MAX_TURNS, 2))

"""kzqa as a service: the REST API, its keys, limits, errors, health, metrics and schema, against a
real running server (``kzqa serve`` on loopback, the shipped index), and the Python client."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
import time

import httpx
import pytest
from conftest import ROOT, free_port, run_cli, stop, wait_for_port

RATE = "40/second"


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    keys = {}
    for name in ("alice", "burst", "client", "revoked"):
        done = run_cli("keys", "create", name, "--file", str(path))
        assert done.returncode == 0, done.stderr
        keys[name] = done.stdout.strip()
    return path, keys


@pytest.fixture(scope="module")
def server(key_file, tmp_path_factory):
    """``kzqa serve`` with API keys and a rate limit; yields (url, keys, log path)."""
    path, keys = key_file
    port = free_port()
    logs = tmp_path_factory.mktemp("serve") / "server.log"
    env = dict(os.environ, KZQA_FEEDBACK_DB=str(logs.parent / "feedback.sqlite3"))
    with open(logs, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kzqa", "serve", "--port", str(port), "--api-keys", str(path),
                                 "--rate-limit", RATE], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", keys, logs
    finally:
        stop(proc)


def call(server, method, path, key="alice", **kwargs):
    url, keys, _ = server
    headers = {"Authorization": f"Bearer {keys[key]}"} if key else {}
    return httpx.request(method, url + path, headers={**headers, **kwargs.pop("headers", {})}, timeout=60, **kwargs)


def test_keys_are_shown_once_and_stored_hashed(key_file):
    path, keys = key_file
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all(k.startswith("kzqa_") and k not in text for k in keys.values())
    listed = run_cli("keys", "list", "--file", str(path))
    assert listed.returncode == 0 and "alice" in listed.stdout and not any(k in listed.stdout for k in keys.values())
    assert run_cli("keys", "revoke", "nobody", "--file", str(path)).returncode == 1


def test_the_api_answers_as_the_engine_does(server, engine):
    reply = call(server, "POST", "/api/v1/ask", json={"question": "How tall is the Bayterek tower?"})
    assert reply.status_code == 200 and reply.headers["x-request-id"]
    from kzqa import Answer

    assert Answer.from_dict(reply.json()).to_dict() == engine.ask("How tall is the Bayterek tower?").to_dict()
    found = call(server, "POST", "/api/v1/search", json={"query": "Bayterek tower", "k": 3, "mode": "lexical"}).json()
    assert [h["passage_id"] for h in found["hits"]] == [
        h.passage_id for h in engine.search("Bayterek tower", k=3, mode="lexical")]
    follow = call(server, "POST", "/api/v1/ask", json={"question": "Why was he detained?",
                                                        "history": ["When was Serikzhan Bilash detained?"]}).json()
    assert "Bilash" in follow["question"]  # a follow-up is searched with the conversation's topic


def test_documents_metadata_sections_and_text(server, engine):
    listed = call(server, "GET", "/api/v1/documents").json()["documents"]
    assert {d["doc_id"] for d in listed} == set(engine.documents) and all(d["text"] is None for d in listed)
    doc_id = listed[0]["doc_id"]
    one = call(server, "GET", f"/api/v1/documents/{doc_id}", params={"text": "true"}).json()
    assert one["text"] == engine.documents[doc_id].text
    assert [s["title"] for s in one["sections"]] == [s.title for s in engine.documents[doc_id].sections]
    missing = call(server, "GET", "/api/v1/documents/no-such-document")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_feedback_is_stored(server):
    from kzqa.app.feedback import FeedbackStore

    body = {"vote": "up", "question": "How tall is the Bayterek tower?", "answer": "97 meters [1]",
            "passage_ids": ["p1"], "answer_id": "api-test-1"}
    first = call(server, "POST", "/api/v1/feedback", json=body)
    again = call(server, "POST", "/api/v1/feedback", json={**body, "vote": "down"})  # replaces the first
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    rows = FeedbackStore(server[2].parent / "feedback.sqlite3").rows()
    assert [(r["question"], r["vote"]) for r in rows] == [("How tall is the Bayterek tower?", "down")]


@pytest.mark.parametrize("key, status, says", [(None, 401, "an API key is needed"),
                                                ("wrong", 401, "not valid")])
def test_keys_are_required(server, key, status, says):
    headers = {"Authorization": "Bearer kzqa_wrong"} if key == "wrong" else {}
    reply = call(server, "POST", "/api/v1/ask", key=None, headers=headers, json={"question": "Bayterek?"})
    assert reply.status_code == status and says in reply.json()["error"]["message"]
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_a_revoked_key_is_refused_at_once(server, key_file):
    assert call(server, "GET", "/api/v1/documents", key="revoked").status_code == 200
    done = run_cli("keys", "revoke", "revoked", "--file", str(key_file[0]))
    assert done.returncode == 0, done.stderr
    assert call(server, "GET", "/api/v1/documents", key="revoked").status_code == 401  # no restart needed
    assert call(server, "GET", "/api/v1/documents", key="alice").status_code == 200


@pytest.mark.parametrize("content, status, code", [
    (b'{"question": ', 400, "bad_json"),
    (json.dumps({"question": "Bayterek?", "k": 0}).encode(), 422, "invalid"),
    (json.dumps({"question": "Bayterek?", "mode": "telepathy"}).encode(), 422, "invalid"),
    (json.dumps({"question": "Bayterek?", "colour": "red"}).encode(), 422, "invalid"),
    (json.dumps({"question": ""}).encode(), 422, "invalid"),
    (json.dumps({"question": "Bayterek?", "doc_ids": ["nope"]}).encode(), 422, "bad_request"),
    (json.dumps({"question": "x" * 70_000}).encode(), 413, "too_large"),
])
def test_bad_requests_get_a_status_and_one_message(server, content, status, code):
    reply = call(server, "POST", "/api/v1/ask", content=content, headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and error["message"] and "Traceback" not in reply.text


def test_a_client_over_its_rate_gets_429_with_retry_after(server):
    replies = []

    def burst():
        with httpx.Client(timeout=30) as http:
            for _ in range(12):
                replies.append(http.get(server[0] + "/api/v1/documents",
                                        headers={"Authorization": f"Bearer {server[1]['burst']}"}))

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    limited = [r for r in replies if r.status_code == 429]
    assert limited and {r.status_code for r in replies} <= {200, 429}
    assert int(limited[0].headers["retry-after"]) >= 1 and limited[0].json()["error"]["code"] == "rate_limited"
    assert call(server, "GET", "/api/v1/documents", key="alice").status_code == 200  # other keys are unaffected


def test_health_readiness_and_metrics(server):
    from prometheus_client.parser import text_string_to_metric_families

    url = server[0]
    assert httpx.get(url + "/healthz").json() == {"status": "alive"}
    ready = httpx.get(url + "/readyz").json()
    assert ready["status"] == "ready" and ready["passages"] > 0
    call(server, "POST", "/api/v1/ask", json={"question": "What is the capital of Peru?"})
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)}
    requests = {(s.labels["route"], s.labels["status"]): s.value for s in families["kzqa_http_requests"].samples
                if s.name == "kzqa_http_requests_total"}
    assert requests[("/api/v1/ask", "200")] >= 1 and requests[("/api/v1/ask", "401")] >= 1
    answers = {s.labels["status"]: s.value for s in families["kzqa_answers"].samples if s.name.endswith("_total")}
    assert answers.get("not_covered", 0) >= 1
    assert any(s.name == "kzqa_request_seconds_count" and s.labels["route"] == "/api/v1/ask" and s.value >= 1
               for s in families["kzqa_request_seconds"].samples)
    assert families["kzqa_index_passages"].samples[0].value == ready["passages"]
    info = families["kzqa_index_info"].samples[0].labels
    manifest = json.loads((ROOT / "embeddings" / "manifest.json").read_text())
    assert info["store"] == "files" and info["created_at"] == manifest["created_at"]
    assert families["kzqa_index_build_seconds"].samples[0].value == manifest["build_seconds"]


def test_one_json_log_line_per_request_without_the_question(server):
    reply = call(server, "POST", "/api/v1/ask", json={"question": "Who founded Atajurt Eriktileri?"},
                 headers={"X-Request-ID": "test-req-42"})
    assert reply.headers["x-request-id"] == "test-req-42"
    time.sleep(0.3)
    lines = [json.loads(x) for x in server[2].read_text().splitlines() if x.startswith("{")]
    mine = [x for x in lines if x["request_id"] == "test-req-42"]
    assert len(mine) == 1 and mine[0]["route"] == "/api/v1/ask" and mine[0]["status"] == 200
    assert "question" not in mine[0] and "Atajurt" not in server[2].read_text()


def test_the_openapi_schema_validates_and_the_docs_are_served(server):
    from openapi_spec_validator import validate

    schema = httpx.get(server[0] + "/api/v1/openapi.json").json()
    validate(schema)
    assert {"/ask", "/search", "/documents", "/documents/{doc_id}", "/feedback"} <= set(schema["paths"])
    schemes = schema["components"]["securitySchemes"].values()  # Swagger UI's Authorize button
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes)
    assert all(op.get("security") for path in schema["paths"].values() for op in path.values())
    docs = httpx.get(server[0] + "/api/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert len(assets) >= 3 and all(a.startswith("/api/docs/assets/") for a in assets), assets  # no CDN
    for asset in assets:
        assert httpx.get(server[0] + asset).status_code == 200, asset


def test_the_client_answers_as_the_local_engine_on_the_dev_questions(server, engine):
    import kzqa

    questions = [json.loads(x)["question"] for x in (ROOT / "benchmarks" / "qa" / "dev.jsonl").read_text().splitlines()]
    with kzqa.connect(server[0], api_key=server[1]["client"]) as remote:
        for question in questions:
            assert remote.ask(question).to_dict() == engine.ask(question).to_dict(), question
        assert remote.search("Bayterek", k=2) == engine.search("Bayterek", k=2)
        doc_id = next(iter(engine.documents))
        assert remote.documents[doc_id].text == engine.documents[doc_id].text
        assert set(remote.documents) == set(engine.documents)
        with pytest.raises(kzqa.QueryError, match="k"):
            remote.ask("Bayterek?", k=0)
    with kzqa.connect(server[0], api_key="kzqa_wrong") as stranger, pytest.raises(kzqa.QueryError, match="not valid"):
        stranger.ask("Bayterek?")
    with kzqa.connect(f"http://127.0.0.1:{free_port()}") as nobody, pytest.raises(kzqa.IndexProblem, match="reached"):
        nobody.ask("Bayterek?")


def test_serving_beyond_loopback_without_keys_or_login_warns(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("KZQA_API_KEYS", "KZQA_API_KEYS_FILE", "KZQA_AUTH")}
    proc = subprocess.Popen([sys.executable, "-m", "kzqa", "serve", "--host", "0.0.0.0", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, proc)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "warning: serving on 0.0.0.0 with neither API keys nor --auth" in out


def test_503_while_the_index_loads_then_ready(tmp_path):
    """The service's app itself (FastAPI, in this process) over an engine whose loading waits for
    a gate, then loads the shipped index."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import kzqa
    from kzqa.app.feedback import FeedbackStore
    from kzqa.app.service import Metrics, ServiceSettings, service_routes
    from kzqa.backends import PendingEngine

    gate = threading.Event()
    engine = PendingEngine(lambda: (gate.wait(60), kzqa.load())[1])
    app = FastAPI(routes=service_routes(engine, FeedbackStore(tmp_path / "f.sqlite3"), ServiceSettings(),
                                        Metrics.create()))
    with TestClient(app) as client:
        for path, method in (("/readyz", "GET"), ("/api/v1/ask", "POST"), ("/api/v1/documents", "GET")):
            reply = client.request(method, path, json={"question": "Bayterek?"} if method == "POST" else None)
            assert reply.status_code == 503 and reply.headers["retry-after"], path
            assert reply.json()["error"] == {"code": "not_ready", "message": "the index is still loading"}
        assert client.get("/healthz").status_code == 200  # alive all along
        gate.set()
        assert engine.wait(120)
        assert client.get("/readyz").json()["status"] == "ready"
        assert client.post("/api/v1/ask", json={"question": "How tall is the Bayterek tower?"}).json()["short"][
            "text"] == "97 meters"


def test_503_when_the_database_stops_answering(new_database, tmp_path):
    import psycopg

    from kzqa.stores.postgres import build_db

    url = new_database()
    build_db(url, ROOT / "corpus")
    port = free_port()
    env = dict(os.environ, KZQA_DATABASE_URL=url, KZQA_FEEDBACK_DB=str(tmp_path / "f.sqlite3"))
    env.pop("KZQA_API_KEYS", None)
    proc = subprocess.Popen([sys.executable, "-m", "kzqa", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, proc)
        assert httpx.get(base + "/readyz").status_code == 200
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        time.sleep(1.5)  # past the store's one-second look for a newer generation
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
        asked = httpx.post(base + "/api/v1/ask", json={"question": "How tall is the Bayterek tower?"}, timeout=60)
        assert asked.status_code == 503 and "password" not in asked.text and name not in asked.text
    finally:
        stop(proc)
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" WITH ALLOW_CONNECTIONS true')


def test_the_readmes_client_example_runs(server, capsys):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## HTTP API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    block = block.replace('"http://127.0.0.1:7860"', repr(server[0]))
    exec(compile(block, "README.md", "exec"), {"KEY": server[1]["alice"]})
    assert "97 meters" in capsys.readouterr().out


def test_questions_beyond_the_answering_slots_wait_then_get_503(engine, tmp_path):
    """One answering slot and almost no patience: of many questions at once, those that find the
    slot taken past the timeout get 503 'busy'; the others are answered."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from kzqa.app.feedback import FeedbackStore
    from kzqa.app.service import Metrics, ServiceSettings, service_routes

    settings = ServiceSettings(max_concurrent=1, queue_timeout=0.001, rate_limit="1000/second")
    app = FastAPI(routes=service_routes(engine, FeedbackStore(tmp_path / "f.sqlite3"), settings, Metrics.create()))
    statuses, lock = [], threading.Lock()
    with TestClient(app) as client:
        def asker():
            for _ in range(3):
                reply = client.post("/api/v1/ask", json={"question": "Why did Kazakhs protest in 2016?", "k": 10})
                with lock:
                    statuses.append((reply.status_code, reply.json().get("error", {}).get("code")))

        threads = [threading.Thread(target=asker) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert set(statuses) <= {(200, None), (503, "busy")} and (503, "busy") in statuses and (200, None) in statuses

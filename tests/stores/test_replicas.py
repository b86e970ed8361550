"""Beyond one machine, shown here: one PostgreSQL primary, one streaming read replica
(``pg_basebackup -R``), two app processes — one reading the primary, one the replica. After a
build on the primary, the replica's app answers from the new generation, without a restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import CORPUS, ROOT, free_port, stop, wait_for_port

psycopg = pytest.importorskip("psycopg", reason="PostgreSQL support is not installed (pip install 'kzqa[postgres]')")

from kzqa.stores import pgserver  # noqa: E402
from kzqa.stores.postgres import build_db  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NEW_FACT = "Khorgos dry port rail freight"


@pytest.fixture
def replica(pg_server):
    folder = Path(tempfile.mkdtemp(prefix="kzqa-test-replica-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield pgserver.start(folder / "data", port=free_port(), replica_of=pg_server)
    finally:
        pgserver.stop(folder / "data")
        shutil.rmtree(folder, ignore_errors=True)


def _serve(db: str, feedback_db: str, tmp_path: Path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kzqa", "serve", "--port", str(port), "--db", db,
                             "--feedback-db", feedback_db], cwd=ROOT,
                            stdout=open(tmp_path / f"serve-{port}.log", "w"),  # a file: the app logs every request
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, HOME=str(tmp_path)))
    return proc, port


def _wait_for_extra(client, timeout: float = 60) -> None:
    """Poll until the app's top hit for NEW_FACT is the new document (apps look for a newer
    generation at most once a second)."""
    deadline = time.time() + timeout
    while client.predict(NEW_FACT, 1, "hybrid", api_name="/search")["hits"][0]["doc_id"] != "extra":
        assert time.time() < deadline, "the app never served the new build"
        time.sleep(0.5)


def _on_replica(url: str, replica: pgserver.LocalServer, primary: pgserver.LocalServer) -> str:
    return url.replace(f":{primary.port}/", f":{replica.port}/")


def test_replica_app_serves_the_build_made_on_the_primary(pg_server, replica, new_database, tmp_path):
    from gradio_client import Client

    primary_db = new_database()
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    build_db(primary_db, corpus, multilingual_model=None, cache=tmp_path / "cache")
    replica_db = _on_replica(primary_db, replica, pg_server)
    deadline = time.time() + 30
    while True:  # the replica receives the database and its first generation
        try:
            with psycopg.connect(replica_db) as conn:
                if conn.execute("SELECT to_regclass('kzqa.serving') IS NOT NULL").fetchone()[0] and \
                        conn.execute("SELECT count(*) FROM kzqa.serving").fetchone()[0]:
                    assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                    break
        except psycopg.OperationalError:
            pass
        assert time.time() < deadline, "the replica never received the index"
        time.sleep(0.2)

    apps = [_serve(replica_db, primary_db, tmp_path), _serve(primary_db, primary_db, tmp_path)]
    try:
        for proc, port in apps:
            wait_for_port(port, proc)
        clients = [Client(f"http://127.0.0.1:{port}/", verbose=False) for _, port in apps]
        for client in clients:
            answer = client.predict("How tall is the Bayterek tower?", 5, "hybrid", api_name="/ask")
            assert "97 meters" in answer["text"]
            hits = client.predict(NEW_FACT, 1, "hybrid", api_name="/search")["hits"]
            assert hits[0]["doc_id"] != "extra"

        (corpus / "extra.md").write_text("# Extra\n\nThe Khorgos dry port handles rail freight between the two "
                                         "countries and opened in 2015.\n", encoding="utf-8")
        build_db(primary_db, corpus, multilingual_model=None, cache=tmp_path / "cache")  # on the primary only

        for client in clients:  # the replica's app (and the primary's) switch to the new generation by themselves
            _wait_for_extra(client)
        answer = clients[0].predict("When did the Khorgos dry port open?", 5, "hybrid", api_name="/ask")
        assert "2015" in answer["text"] and answer["citations"][0]["doc_id"] == "extra"
    finally:
        for proc, _ in apps:
            stop(proc)

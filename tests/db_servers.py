"""Throw-away database servers for the worker tests: PostgreSQL and MariaDB (MySQL), one fresh database per test.

Both are started the same way (:func:`running_server`): in their own temporary folder under /tmp, listening on
a unix socket in that folder only (no TCP port to collide with), with small memory and no fsync, and stopped
and removed at the end. Neither server runs as root, and CI runs as root: the folder is then owned by an
unprivileged user (``nobody``) and the server's commands run through ``runuser``. Tests that need a server
skip, saying why, where its binaries or its Python driver are absent. Outside pytest, ``running_server``
starts one for ``bench/scale_out.py``.

Fixtures: ``postgres_server``/``mariadb_server`` (one per session, started when first asked for),
``server_url`` (a new database on each server in turn: the test runs once per backend) and ``study_url``
(the same plus a SQLite file).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "nobody"
KINDS = ("postgresql", "mysql")


class Unavailable(RuntimeError):
    """No server can be started here (no binaries, no driver, root without runuser): the reason is the message."""


@dataclass(frozen=True)
class Server:
    """A running throw-away server: ``kind`` ("postgresql" or "mysql") and its folder (socket, data, log)."""

    kind: str
    folder: Path

    def new_database(self) -> str:
        """A new, empty database on this server, as a SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        if self.kind == "postgresql":
            import psycopg2

            con = psycopg2.connect(dbname="postgres", user="postgres", host=str(self.folder))
            try:
                con.autocommit = True
                with con.cursor() as cur:
                    cur.execute(f"CREATE DATABASE {name}")
            finally:
                con.close()
            return f"postgresql+psycopg2://postgres@/{name}?host={self.folder}"
        import pymysql

        con = pymysql.connect(unix_socket=str(self.folder / "mysql.sock"), user="root")
        try:
            with con.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        finally:
            con.close()
        return f"mysql+pymysql://root@localhost/{name}?unix_socket={self.folder / 'mysql.sock'}&charset=utf8mb4"


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", USER, "--", *args] if os.geteuid() == 0 else args


def _need(driver: str, extra: str, name: str) -> None:
    """Raise Unavailable when the Python driver or (as root) ``runuser`` is missing."""
    try:
        __import__(driver)
    except ImportError:
        raise Unavailable(f"the {name} driver is not installed: pip install 'flnas[{extra}]'") from None
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise Unavailable(f"running as root without runuser: cannot start {name} as an unprivileged user")


def _run(args: list[str], what: str, timeout: float = 120) -> None:
    """Run one of the server's commands as the server user; a failure says which and its last line."""
    try:
        subprocess.run(_as_server_user(args), check=True, capture_output=True, timeout=timeout)
    except subprocess.CalledProcessError as exc:
        lines = (exc.stderr or exc.stdout or b"").decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"could not {what}: {lines[-1] if lines else f'exit status {exc.returncode}'}") from None


@contextmanager
def _throwaway(kind: str, start: Callable[[Path], Callable[[], None]]) -> Iterator[Server]:
    """The part both servers share: a short folder under /tmp (unix socket paths are limited) that the server
    user owns, ``start(folder)`` (returns how to stop it), and at the end the stop and the folder's removal."""
    base = Path(tempfile.mkdtemp(prefix=f"flnas-{kind[:2]}-", dir="/tmp"))
    try:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(USER)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        stop = start(base)
        try:
            yield Server(kind, base)
        finally:
            stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _postgres_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<v>/bin), or PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _start_postgres(base: Path) -> Callable[[], None]:
    bin_dir = _postgres_binaries()
    assert bin_dir is not None
    data, log = base / "data", base / "server.log"
    _run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
          "--locale=C"], "create a PostgreSQL cluster")
    options = f"-k {base} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c max_connections=200"
    _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"],
         "start PostgreSQL", timeout=90)

    def stop() -> None:
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)

    return stop


def _mariadb_binaries() -> tuple[str, str] | None:
    """The server (``mariadbd``, older ``mysqld``) and the program that creates its system tables."""
    for server, install in (("mariadbd", "mariadb-install-db"), ("mysqld", "mysql_install_db")):
        found = shutil.which(server) or shutil.which(server, path="/usr/sbin:/usr/local/sbin")
        if found and shutil.which(install):
            return found, str(shutil.which(install))
    return None


# Small and fast: a 16 MB buffer pool, 4 MB redo log, no binary log, no performance schema, no flush per commit.
# Snapshot isolation on, as MariaDB 11.6.2+ has it by default (Debian 13): what flnas's READ COMMITTED is for
# ("loose": a server without the option starts all the same)
_MARIADB_OPTIONS = ["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=4M", "--performance-schema=OFF",
                    "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
                    "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
                    "--loose-innodb-snapshot-isolation=ON"]


def _start_mariadb(base: Path) -> Callable[[], None]:
    import pymysql

    found = _mariadb_binaries()
    assert found is not None
    server, install = found
    data, sock, pid_file, log = base / "data", base / "mysql.sock", base / "server.pid", base / "server.log"
    # root@localhost with an empty password ("normal": not unix-socket authentication, which would need the OS
    # user to be root); no test database
    _run([install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
          "--skip-test-db", "--skip-name-resolve", *_MARIADB_OPTIONS], "create a MariaDB data folder")
    proc = subprocess.Popen(
        _as_server_user([server, "--no-defaults", f"--datadir={data}", f"--socket={sock}", "--skip-networking",
                         f"--pid-file={pid_file}", f"--log-error={log}", f"--tmpdir={base}", "--max-connections=200",
                         *_MARIADB_OPTIONS]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        try:  # the server itself (runuser does not pass every signal on); its data is thrown away
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            proc.kill()
        proc.wait(timeout=60)

    deadline = time.monotonic() + 60
    while True:
        try:
            pymysql.connect(unix_socket=str(sock), user="root", connect_timeout=5).close()
            return stop
        except pymysql.err.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop()
                lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
                raise RuntimeError(f"could not start MariaDB: {lines[-1] if lines else 'no log'}") from None
            time.sleep(0.1)


@contextmanager
def running_server(kind: str) -> Iterator[Server]:
    """A fresh server of ``kind`` ("postgresql" or "mysql", i.e. MariaDB) for the ``with`` block.

    Raises Unavailable (the reason) where it cannot be started here, RuntimeError where starting it failed.
    """
    if kind == "postgresql":
        if _postgres_binaries() is None:
            raise Unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql")
        _need("psycopg2", "postgres", "PostgreSQL")
        start = _start_postgres
    elif kind == "mysql":
        if _mariadb_binaries() is None:
            raise Unavailable("MariaDB server binaries (mariadbd, mariadb-install-db) not found; install Debian's "
                              "mariadb-server")
        _need("pymysql", "mysql", "MySQL")
        start = _start_mariadb
    else:
        raise ValueError(f"unknown server kind {kind!r}; one of {', '.join(KINDS)}")
    with _throwaway(kind, start) as server:
        yield server


def _session_server(kind: str) -> Iterator[Server]:
    try:
        context = running_server(kind)
        server = context.__enter__()
    except Unavailable as exc:
        pytest.skip(str(exc))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """A PostgreSQL server for the session."""
    yield from _session_server("postgresql")


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[Server]:
    """A MariaDB server for the session (Optuna's and flnas's MySQL path)."""
    yield from _session_server("mysql")


_FIXTURES = {"postgresql": "postgres_server", "mysql": "mariadb_server"}


@pytest.fixture(params=KINDS)
def server_url(request) -> str:
    """A new, empty database on each server in turn (the test runs once per backend), as a SQLAlchemy URL."""
    return request.getfixturevalue(_FIXTURES[request.param]).new_database()


@pytest.fixture(params=("sqlite", *KINDS))
def study_url(request, tmp_path) -> str:
    """As ``server_url``, plus a SQLite file (the storage of one machine's workers)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue(_FIXTURES[request.param]).new_database()

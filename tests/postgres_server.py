"""A throw-away PostgreSQL server for the worker tests (fixture ``postgres_url``: one fresh database per test).

PostgreSQL refuses to run as root, and CI runs as root: the server's folder is then owned by an
unprivileged user (``nobody``) and ``initdb``/``pg_ctl`` run through ``runuser``. The server listens on a
unix socket in its own temporary folder only (no TCP port to collide with). Tests that need it skip,
saying why, where the server binaries or the ``psycopg2`` driver are absent. ``running_server`` and
``new_database`` start one outside pytest (bench/scale_out.py).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

USER = "nobody"


def _binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<v>/bin), or PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", USER, "--", *args] if os.geteuid() == 0 else args


class Unavailable(RuntimeError):
    """No server can be started here (no binaries, no driver, root without runuser): the reason is the message."""


@contextmanager
def running_server() -> Iterator[str]:
    """A fresh PostgreSQL server (fsync off, unix socket only) for the ``with`` block; yields its socket folder."""
    bin_dir = _binaries()
    if bin_dir is None:
        raise Unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql to run")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise Unavailable("the PostgreSQL driver is not installed: pip install 'flnas[postgres]'") from None
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise Unavailable("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    base = Path(tempfile.mkdtemp(prefix="flnas-pg-", dir="/tmp"))  # short: unix socket paths are limited
    if os.geteuid() == 0:
        entry = pwd.getpwnam(USER)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data, log = base / "data", base / "server.log"
    try:
        subprocess.run(
            _as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                             "--no-sync", "-E", "UTF8", "--locale=C"]),
            check=True, capture_output=True, timeout=120,
        )
        options = f"-k {base} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c max_connections=200"
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
                             "-t", "60", "start"]),
            check=True, capture_output=True, timeout=90,
        )
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {detail}") from None
    try:
        yield str(base)
    finally:
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def new_database(server: str) -> str:
    """A new, empty database on the server at socket folder ``server``, as a SQLAlchemy URL."""
    import psycopg2

    name = f"t_{uuid.uuid4().hex[:12]}"
    con = psycopg2.connect(dbname="postgres", user="postgres", host=server)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
    finally:
        con.close()
    return f"postgresql+psycopg2://postgres@/{name}?host={server}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Start a server for the session; yields its socket folder."""
    try:
        server = running_server()
        socket_dir = server.__enter__()
    except Unavailable as exc:
        pytest.skip(str(exc))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield socket_dir
    finally:
        server.__exit__(None, None, None)


@pytest.fixture()
def postgres_url(postgres_server) -> str:
    """A new, empty database on the session's server, as a SQLAlchemy URL."""
    return new_database(postgres_server)

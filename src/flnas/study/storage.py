"""The study is an Optuna study in RDB storage; this module opens it and holds its record layout.

Layout (every field JSON-serialisable), so that search, baselines, report and the dashboard agree:

Study user attributes
    ``setup``: {"data": str | None (None: the embedded synthetic set), "dataset": name, "subset", "seed",
    "image_size", "cache_dir", "train": EvaluatorConfig.to_dict(), "env", "choices": Choices as dict,
    "classes": [...], "accuracy": "balanced" | "plain"} -- written once by the first command that creates
    the study. A setup without "accuracy" (a study created before the setting existed) is "plain".

Trial user attributes
    ``kind``: "search" | "baseline" | "repeat"; ``iteration`` (1-based, search only); ``designer``;
    ``baseline`` (model name, baselines only); ``status``: "ok" | "degenerate" | "failed" | "invalid";
    ``reason`` (why not ok); ``spec`` (architecture JSON or None); ``spec_key`` (canonical JSON);
    ``metrics`` (the evaluator's JSON object); ``record`` (prompt, raw reply, attempts, token usage,
    timings); ``seed``.
    ``repeat_of`` (trial number) and ``repeat`` (index) for report re-runs.

Trial values (state COMPLETE, kind "search"/"baseline" with status "ok"): ``[val accuracy of record, val
unfairness, params]`` with directions maximise, minimise, minimise; the accuracy of record is the val
balanced accuracy, or the plain val accuracy when the setup says "plain" (the metric names say which). An
undefined unfairness is stored as 1.0 (the worst) in values and as null in ``metrics``. Degenerate, failed
and invalid candidates are state FAIL with the same user attrs (a degenerate one keeps its metrics), so no
Optuna tool shows them on a Pareto front.
"""

from __future__ import annotations

import errno
import os
import random
import sqlite3
import time
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import optuna

from flnas.errors import StudyError
from flnas.study.workers import Liveness

DEFAULT_STORAGE = "sqlite:///flnas.db"
DEFAULT_STUDY = "flnas"
DIRECTIONS = ["maximize", "minimize", "minimize"]
OBJECTIVE_NAMES = ["val_accuracy", "val_unfairness", "params"]


def objective_names(accuracy: str) -> list[str]:
    """The study's metric names for an accuracy setting (what the Optuna dashboard shows)."""
    first = "val_balanced_accuracy" if accuracy == "balanced" else "val_accuracy"
    return [first, *OBJECTIVE_NAMES[1:]]


def storage_url(storage: str | None) -> str:
    """Accept a SQLAlchemy URL or a plain file path (taken as SQLite)."""
    if not storage:
        return os.environ.get("FLNAS_STORAGE", DEFAULT_STORAGE)
    if "://" in storage:
        return storage
    return f"sqlite:///{storage}"


def open_study(
    name: str, storage: str | None, *, create: bool = True, liveness: Liveness | None = None
) -> optuna.Study:
    """Open (or create) the named multi-objective study; one clear error when the storage cannot be used.

    A SQLite file is checked first (``PRAGMA quick_check``): a damaged one is refused, never written to.
    ``liveness`` turns on Optuna's heartbeats (what `flnas search` workers use to tell a dead worker's
    trial). Several workers starting together on a fresh database race to create Optuna's tables and the
    study; a creation that loses the race is retried after a short, random pause.
    """
    url = storage_url(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_sqlite(url)
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return _open(name, url, create=create, liveness=liveness)
        except KeyError as exc:
            missing = f"no study named {name!r} in {_redact(url)}; run `flnas search --study {name}` first"
            raise StudyError(missing) from exc
        except Exception as exc:  # SQLAlchemy/optuna raise many kinds; the user needs one sentence
            if attempt + 1 < CREATE_ATTEMPTS and _lost_creation_race(exc):
                time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
                continue
            known = storage_problem(exc, url)
            raise StudyError(known or f"cannot open study {name!r} in {_redact(url)}: {_first_line(exc)}") from exc
    raise AssertionError("unreachable")


CREATE_ATTEMPTS = 8


def _open(name: str, url: str, *, create: bool, liveness: Liveness | None) -> optuna.Study:
    beats: dict[str, Any] = {"heartbeat_interval": None}
    if liveness is not None:
        beats = {"heartbeat_interval": liveness.heartbeat, "grace_period": liveness.grace}
    with warnings.catch_warnings():  # heartbeat_interval is marked experimental in optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url), **beats)
    _widen_mysql_attributes(rdb)
    if create:
        study = optuna.create_study(study_name=name, storage=rdb, directions=DIRECTIONS, load_if_exists=True)
        if study.metric_names is None:  # a study's own names (see set_setup) are kept
            _set_names(study, OBJECTIVE_NAMES)
        return study
    return optuna.load_study(study_name=name, storage=rdb)


def _widen_mysql_attributes(rdb: optuna.storages.RDBStorage) -> None:
    """On MySQL/MariaDB, let Optuna's attribute values hold 16 MB (MEDIUMTEXT) instead of TEXT's 64 KB.

    An LLM candidate's record (the prompt and up to four replies of up to 20,000 characters, JSON-escaped)
    can pass 64 KB, which MySQL refuses ("Data too long for column 'value_json'") where PostgreSQL and
    SQLite take it. Done once per database (the columns are checked first, so later opens change nothing);
    a database user who may not ALTER keeps the 64 KB limit.
    """
    import sqlalchemy

    if rdb.engine.dialect.name not in ("mysql", "mariadb"):
        return
    find = sqlalchemy.text(
        "SELECT TABLE_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND COLUMN_NAME = 'value_json' AND DATA_TYPE = 'text'"
    )
    with rdb.engine.connect() as con:
        for table in con.execute(find).scalars().all():
            try:
                con.execute(sqlalchemy.text(f"ALTER TABLE `{table}` MODIFY value_json MEDIUMTEXT"))
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError):  # not allowed to ALTER
                return


def _lost_creation_race(exc: BaseException) -> bool:
    """Another process created the same table, row or study at the same moment (safe to try again)."""
    import sqlalchemy.exc

    for cause in _chain(exc):
        text = str(cause).lower()
        if isinstance(cause, sqlalchemy.exc.IntegrityError) or "uniqueviolation" in text:
            return True
        if "already exists" in text or "duplicate key" in text or "database is locked" in text:
            return True
    return False


def sqlite_path(url: str) -> str | None:
    """The file behind a SQLite URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return database if database and database != ":memory:" else None


def check_sqlite(url: str) -> None:
    """Refuse a SQLite study file that is damaged (a page overwritten, truncated) or is not a database.

    Runs ``PRAGMA quick_check`` on an existing file (a missing one is created later by optuna). A
    journal left by a killed process is rolled back by this connection, as optuna's would.
    """
    path = sqlite_path(url)
    if path is None or not os.path.isfile(path):
        return
    try:
        with closing(sqlite3.connect(path, timeout=30)) as con:
            problems = [row[0] for row in con.execute("PRAGMA quick_check(3)").fetchall()]
    except sqlite3.DatabaseError as exc:
        problem = storage_problem(exc, url)
        raise StudyError(problem or f"{path}: cannot read the study database ({exc})") from exc
    if problems != ["ok"]:
        raise StudyError(_corrupt(path, problems[0]))


# The database drivers SQLAlchemy imports for a storage URL, and what to do when one is missing
DRIVERS = {
    "psycopg2": "the PostgreSQL driver (psycopg2) is not installed: pip install 'flnas[postgres]'",
    "psycopg": (  # SQLAlchemy 2.1's default for postgresql://
        "a postgresql:// URL asks for the psycopg (3) driver, which is not installed: pip install 'flnas[postgres]' "
        "and write the URL as postgresql+psycopg2://USER:PASSWORD@HOST/DATABASE"
    ),
    "pymysql": "the MySQL/MariaDB driver (PyMySQL) is not installed: pip install 'flnas[mysql]'",
    "MySQLdb": (  # SQLAlchemy's default for mysql:// and mariadb://
        "a mysql:// URL asks for the mysqlclient driver, which is not installed: pip install 'flnas[mysql]' and "
        "write the URL as mysql+pymysql://USER:PASSWORD@HOST/DATABASE"
    ),
}


def storage_problem(exc: BaseException, url: str | None) -> str | None:
    """One sentence for a storage failure a user can act on (disk full, damaged or locked file, no driver), else None.

    Looks through the exception's causes: optuna wraps SQLAlchemy, which wraps the driver's error, and
    says only "invalid data ... exceeding max length" for all of them.
    """
    where = (sqlite_path(url) or _redact(url)) if url else "(--storage)"
    for cause in _chain(exc):
        text = str(cause).lower()
        if isinstance(cause, ImportError) and cause.name in DRIVERS:
            return DRIVERS[cause.name]
        if getattr(cause, "errno", None) == errno.ENOSPC or "disk is full" in text or "no space left" in text:
            return (
                f"the disk holding the study database {where} is full; free some space there (or pass "
                "another --storage) and run the command again -- results recorded so far are kept"
            )
        if "malformed" in text or "not a database" in text or "corrupt" in text:
            return _corrupt(where, str(cause).splitlines()[0])
        if "database is locked" in text:
            return f"the study database {where} is locked by another process; wait for it or stop it, then retry"
        if "readonly database" in text or "read-only" in text:
            return f"the study database {where} is read-only; pass a writable --storage or fix its permissions"
    return None


@contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn a failure of the study's database while a command runs into one sentence (StudyError)."""
    import sqlalchemy.exc

    try:
        yield
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError, sqlite3.Error) as exc:
        problem = storage_problem(exc, url)
        raise StudyError(problem or f"the study database {_redact(url)} failed: {_first_line(exc)}") from exc


def _corrupt(where: str, detail: str) -> str:
    return (
        f"the study database {where} is damaged ({detail}); flnas will not write into it -- restore it "
        "from a backup or pass another --storage"
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_line(exc: BaseException) -> str:
    """The root cause's first line (drops SQLAlchemy's [SQL: ...] and background-link lines)."""
    root = list(_chain(exc))[-1]
    text = str(root).strip().splitlines()
    return text[0] if text else type(root).__name__


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith(("mysql", "mariadb")):
        # READ COMMITTED, PostgreSQL's default, under which the workers are tested on both servers. Under
        # MySQL's REPEATABLE READ, MariaDB 11.6.2+ (innodb_snapshot_isolation on by default: Debian 13) fails
        # workers writing to one study with "Record has changed since last read". pool_pre_ping: optuna sets
        # it for mysql:// only; a connection idle past the server's wait_timeout is then replaced.
        return {"isolation_level": "READ COMMITTED", "pool_pre_ping": True}
    return {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}


def _redact(url: str) -> str:
    """Hide a password in a database URL before it is shown."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def get_setup(study: optuna.Study) -> dict[str, Any] | None:
    return study.user_attrs.get("setup")


def set_setup(study: optuna.Study, setup: dict[str, Any]) -> None:
    study.set_user_attr("setup", setup)
    set_objective_names(study, str(setup.get("accuracy") or "plain"))


def set_objective_names(study: optuna.Study, accuracy: str) -> None:
    """Name the trial values after the study's accuracy of record."""
    _set_names(study, objective_names(accuracy))


def _set_names(study: optuna.Study, names: list[str]) -> None:
    with warnings.catch_warnings():  # set_metric_names is marked experimental in optuna
        warnings.simplefilter("ignore")
        study.set_metric_names(names)


def get_search_settings(study: optuna.Study) -> dict[str, Any]:
    """The last search run's settings (iters, candidates, selection, tolerance, designer); {} before any."""
    settings = study.user_attrs.get("search")
    return settings if isinstance(settings, dict) else {}


def set_search_settings(
    study: optuna.Study, *, iters: int, candidates: int, selection: str, tolerance: float, designer: str
) -> None:
    """Record how the search runs, for `flnas prompt` and for `flnas report`'s default selection rule."""
    settings = {"iters": iters, "candidates": candidates, "selection": selection, "tolerance": tolerance}
    study.set_user_attr("search", {**settings, "designer": designer})

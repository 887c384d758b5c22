"""Several search workers on one study: an atomic claim, Optuna heartbeats, and dead workers' trials.

Any number of ``flnas search`` processes with the same arguments and ``--storage`` share the work of one
designer's search (on one machine or many). Three mechanisms keep them from doing anything twice:

- **Claims.** A worker *claims* the slots of an iteration (``k`` per iteration) by creating its RUNNING
  trials, with ``kind``/``iteration``/``designer`` already set, *before* it calls the designer; reading
  the study, choosing the iteration and creating the trials happen under :func:`claim_lock`, a lock held
  by the database itself (a PostgreSQL advisory lock, MySQL ``GET_LOCK``, an ``flock`` on a file next to
  a SQLite database). A live claim holds its slot, so no two workers design the same iteration, and a
  spec is assigned to its claim under the same lock after a check against every evaluated *and* running
  spec, so no spec is trained twice.
- **Heartbeats.** ``flnas search`` opens the study with Optuna's heartbeat (``RDBStorage(heartbeat_interval,
  grace_period)``); :class:`Heartbeat` records one for each claim of this worker. A RUNNING trial whose
  heartbeat is older than the grace period belongs to a dead worker (any machine): Optuna's
  ``fail_stale_trials`` fails it, and :func:`flnas.study.history.candidate_from_trial` reads it as
  interrupted. Process ids are used only as a shortcut for a worker on *this* machine whose pid is gone.
- **Re-runs.** An interrupted trial's spec is trained again by the next worker that claims its iteration
  (at most :data:`MAX_RERUNS` times; then the iteration is designed again), so a killed worker costs one
  grace period and its design is not lost.
"""

from __future__ import annotations

import fcntl
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from flnas.designers.base import Proposal
from flnas.errors import StudyError
from flnas.records import Candidate, is_evaluated
from flnas.study.history import owner
from flnas.study.recording import record_trial

DEFAULT_HEARTBEAT = 20  # seconds between two heartbeats of a claimed trial
DEFAULT_GRACE = 120  # seconds without a heartbeat after which a trial's worker is taken for dead
MAX_RERUNS = 2  # an interrupted spec is trained again at most this many times, then its iteration is redesigned
_LOCK_NAMESPACE = 0x666C6E61  # "flna": the first key of flnas's PostgreSQL advisory locks


@dataclass(frozen=True)
class Liveness:
    """How a worker shows it is alive (``heartbeat`` seconds) and when a silent one is dead (``grace``)."""

    heartbeat: int = DEFAULT_HEARTBEAT
    grace: int = DEFAULT_GRACE

    def __post_init__(self) -> None:
        if self.heartbeat < 1 or self.grace <= self.heartbeat:
            raise ValueError("the heartbeat interval must be at least 1 s and the grace period longer than it")


def rdb(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    """The study's RDB storage (under Optuna's cache), or None for another kind of storage."""
    storage = study._storage
    storage = getattr(storage, "_backend", storage)
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


def heartbeat_enabled(study: optuna.Study) -> bool:
    storage = rdb(study)
    return storage is not None and storage.get_heartbeat_interval() is not None


def is_sqlite(study: optuna.Study) -> bool:
    storage = rdb(study)
    return storage is not None and storage.url.startswith("sqlite")


_held = threading.local()
_process_locks: dict[str, threading.Lock] = {}


@contextmanager
def claim_lock(study: optuna.Study) -> Iterator[None]:
    """Hold the study's claim lock: one worker at a time reads the study and claims (re-entrant per thread).

    The lock lives where every worker can see it: a PostgreSQL advisory lock or a MySQL named lock on a
    connection of the study's database (released by the server if the worker dies), or an ``flock`` on
    ``<database>.flnas-lock`` next to a SQLite file (released by the kernel). Other storages get a lock
    for this process only.
    """
    if getattr(_held, "depth", 0):
        _held.depth += 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    storage = rdb(study)
    url = storage.url if storage is not None else ""
    with _acquire(storage, url, study.study_name):
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0


def postgres_lock_key(name: str) -> int:
    """The second key of study ``name``'s advisory lock (the first is ``_LOCK_NAMESPACE``; locks are per database)."""
    return zlib.crc32(name.encode()) - 2**31  # signed 32-bit


def mysql_lock_name(database: str, name: str) -> str:
    """The name of study ``name``'s MySQL lock: named locks are server-wide, so it holds the database too,
    hashed to fit MySQL's 64-character limit."""
    return f"flnas:{zlib.crc32(f'{database}/{name}'.encode()):08x}"


@contextmanager
def _acquire(storage: Any, url: str, name: str) -> Iterator[None]:
    import sqlalchemy

    from flnas.study.storage import sqlite_path

    dialect = url.split(":", 1)[0].split("+", 1)[0]
    if storage is not None and dialect == "postgresql":
        key = postgres_lock_key(name)
        with storage.engine.connect() as con:
            con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:a, :b)"), {"a": _LOCK_NAMESPACE, "b": key})
            con.commit()
            try:
                yield
            finally:
                con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:a, :b)"), {"a": _LOCK_NAMESPACE, "b": key})
                con.commit()
        return
    if storage is not None and dialect in ("mysql", "mariadb"):
        lock = mysql_lock_name(str(storage.engine.url.database), name)
        with storage.engine.connect() as con:
            _mysql_get_lock(con, lock)
            try:
                yield
            finally:  # on the connection that holds it (a named lock belongs to its session)
                con.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": lock})
        return
    path = sqlite_path(url) if url else None
    if path is not None:
        try:
            fh = open(f"{path}.flnas-lock", "a+b")  # noqa: SIM115 -- held across the yield
        except OSError:  # a read-only folder: the study cannot be written either; its own error says so
            fh = None
        if fh is not None:
            with fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return
    with _process_locks.setdefault(f"{url}#{name}", threading.Lock()):
        yield


_MYSQL_LOCK_WAIT = 30  # seconds per GET_LOCK call; a worker waits as many calls as the lock's holder needs


def _mysql_get_lock(con: Any, lock: str) -> None:
    """Wait for the MySQL/MariaDB named lock ``lock`` on connection ``con``.

    ``GET_LOCK`` returns 1 when it has the lock, 0 when the wait timed out, NULL on an error. A negative
    timeout (wait for ever) is MySQL's, not MariaDB's: MariaDB 10.11 answers NULL at once and takes no lock.
    So the wait is a finite timeout, asked again until it is granted; the server frees the lock when the
    connection ends, so a killed worker's lock never blocks the others.
    """
    import sqlalchemy

    while True:
        got = con.execute(sqlalchemy.text("SELECT GET_LOCK(:n, :t)"), {"n": lock, "t": _MYSQL_LOCK_WAIT}).scalar()
        if got == 1:
            return
        if got is None:
            raise StudyError(f"the study's MySQL database refused flnas's claim lock {lock!r} (GET_LOCK gave NULL); "
                             "check that the server is MySQL 5.7+ or MariaDB 10.0+ and the database user may call it")


class Heartbeat:
    """Records Optuna heartbeats for this worker's claimed trials from one daemon thread.

    A no-op when the study's storage has no heartbeat interval (e.g. a study opened by `flnas experiment`):
    then only a dead process on this machine is recognised.
    """

    def __init__(self, study: optuna.Study) -> None:
        self._storage = rdb(study) if heartbeat_enabled(study) else None
        self._trials: set[int] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        """Start beating for ``trial_id`` (the first heartbeat is written now, inside the caller's claim)."""
        if self._storage is None:
            return
        self._storage.record_heartbeat(trial_id)
        with self._guard:
            self._trials.add(trial_id)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="flnas-heartbeat", daemon=True)
            self._thread.start()

    def discard(self, trial_id: int) -> None:
        with self._guard:
            self._trials.discard(trial_id)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        assert self._storage is not None
        interval = self._storage.get_heartbeat_interval() or DEFAULT_HEARTBEAT
        while not self._stop.wait(interval):
            with self._guard:
                trials = sorted(self._trials)
            for trial_id in trials:
                try:
                    self._storage.record_heartbeat(trial_id)
                except Exception:  # a database hiccup: the next beat tries again; the grace period allows it
                    pass


def fail_stale(study: optuna.Study) -> list[int]:
    """Fail (Optuna's ``fail_stale_trials``) RUNNING trials whose heartbeat is older than the grace period.

    Returns the numbers of the trials that were failed, by this call or by another worker at the same time.
    """
    if not heartbeat_enabled(study):
        return []
    before = {t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not before:
        return []
    with warnings.catch_warnings():  # fail_stale_trials is marked experimental
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)
    return sorted(
        t.number
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t._trial_id in before and t.user_attrs.get("status") == "running"
    )


def reruns(study: optuna.Study, history: list[Candidate], iteration: int, need: int) -> list[Proposal]:
    """Proposals that train again the specs of this iteration's interrupted trials (each rerun once)."""
    from flnas.space import spec_key

    records = {t.number: dict(t.user_attrs.get("record") or {}) for t in study.get_trials(deepcopy=False)}
    taken = {spec_key(c.spec) for c in history if c.spec is not None and (is_evaluated(c) or c.status == "running")}
    rerun = {records[c.number].get("rerun_of") for c in history}
    out: list[Proposal] = []
    for c in history:
        record = records[c.number]
        if len(out) >= need or c.iteration != iteration or c.spec is None or c.number in rerun:
            continue
        if not (c.status == "failed" and (c.reason or "").startswith("interrupted")):
            continue
        if int(record.get("reruns") or 0) >= MAX_RERUNS or spec_key(c.spec) in taken:
            continue
        taken.add(spec_key(c.spec))
        kept = {key: record[key] for key in ("prompt", "reply", "attempts", "usage", "method") if key in record}
        count = int(record.get("reruns") or 0) + 1
        out.append(Proposal(spec=c.spec, record={**kept, "rerun_of": c.number, "reruns": count}))
    return out


def claim(
    study: optuna.Study,
    heart: Heartbeat,
    designer: str,
    iteration: int,
    seed: int,
    rerun: Proposal | None = None,
) -> tuple[optuna.trial.Trial, Proposal | None]:
    """Create a RUNNING trial holding one slot of ``iteration`` (call under the claim lock)."""
    attrs = {
        "kind": "search",
        "iteration": iteration,
        "designer": designer,
        "seed": seed,
        "spec": None,
        "spec_key": None,
        "status": "running",
        "reason": None,
        "metrics": None,
        "record": {"started": datetime.now(UTC).isoformat(timespec="seconds"), "owner": owner()},
    }
    template = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs=attrs)
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    heart.add(trial_id)
    return optuna.trial.Trial(study, trial_id), rerun


def withdraw(study: optuna.Study, heart: Heartbeat, trials: list[Any], why: str) -> None:
    """Give back claimed slots that will not be used (recorded as invalid; their iteration is designed again)."""
    for trial in trials:
        try:
            record_trial(study, trial, "invalid", why, None, dict(trial.user_attrs.get("record") or {}))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
        heart.discard(trial._trial_id)

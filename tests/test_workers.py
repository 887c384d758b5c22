"""Several search workers on one study: PostgreSQL (the recommended storage), MariaDB/MySQL, and SQLite on one
machine (tests/db_servers.py starts the servers; each test runs once per backend).

Workers are real processes (tests/flnas_worker.py: the random designer, a fake evaluator that takes a
moment and logs what it trains). Checked after they end: exactly iters x k evaluated candidates, every
iteration numbered once with k of them, no spec evaluated twice, no trial left RUNNING, and nothing trained
twice except the candidate of a killed worker (trained again by a survivor after the grace period).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState

from flnas.records import is_evaluated
from flnas.study.history import STALE, load_candidates
from flnas.study.storage import open_study

WORKER = Path(__file__).parent / "flnas_worker.py"
SRC = Path(__file__).resolve().parents[1] / "src"


def _start(url: str, study: str, iters: int, k: int, trained: Path, hang: Path | None = None,
           host: str | None = None, **settings: str) -> subprocess.Popen:
    """A worker process; ``settings`` are its FLNAS_TEST_* variables (GRACE, SECONDS, BARRIER, DESIGNER)."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["OMP_NUM_THREADS"] = "1"  # several workers on two cores
    env.update({f"FLNAS_TEST_{key.upper()}": value for key, value in settings.items()})
    if host is not None:
        env["FLNAS_HOST"] = host
    args = [sys.executable, str(WORKER), url, study, str(iters), str(k), str(trained)] + ([str(hang)] if hang else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(procs: list[subprocess.Popen], timeout: float = 240) -> list[str]:
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, out
        outputs.append(out)
    return outputs


def _check_study(url: str, name: str, iters: int, k: int):
    study = open_study(name, url, create=False)
    trials = study.get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    candidates = load_candidates(study)
    evaluated = [c for c in candidates if is_evaluated(c)]
    assert len(evaluated) == iters * k
    assert Counter(c.iteration for c in evaluated) == {i: k for i in range(1, iters + 1)}
    keys = [t.user_attrs["spec_key"] for t in trials if t.number in {c.number for c in evaluated}]
    assert len(set(keys)) == len(keys)  # no spec evaluated twice
    return study, candidates


def _trained(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_three_workers_on_one_database_share_one_search(server_url, tmp_path):
    iters, k = 6, 1
    trained = tmp_path / "trained.jsonl"
    # started together (a barrier), 1 s per candidate: the work is shared however long each process takes to
    # start on a busy machine (the others wait for the first candidate, then claim while it trains the next)
    (tmp_path / "barrier").mkdir()
    together = {"barrier": f"{tmp_path / 'barrier'}:3", "seconds": "1.0"}
    procs = [_start(server_url, "three", iters, k, trained, **together) for _ in range(3)]
    outputs = _finish(procs)
    assert all(f"RESULT {iters * k}/{iters * k}" in out for out in outputs), outputs
    _check_study(server_url, "three", iters, k)
    keys = [row["key"] for row in _trained(trained)]
    assert len(keys) == iters * k and len(set(keys)) == len(keys)  # nothing trained twice, nothing lost
    assert len({row["pid"] for row in _trained(trained)}) >= 2  # the work was shared


@pytest.mark.slow
def test_a_killed_worker_s_candidate_is_trained_again_by_a_survivor(server_url, tmp_path):
    iters, k = 4, 1
    trained, hang = tmp_path / "trained.jsonl", tmp_path / "hanging"
    # the doomed worker says it runs on another machine: its pid cannot be checked, only its heartbeats. A grace
    # of 15 s: long enough that a live survivor on a busy machine is never taken for dead, short for the test
    grace = "15"
    doomed = _start(server_url, "killed", iters, k, trained, hang=hang, host="another-machine", grace=grace)
    deadline = time.monotonic() + 120
    while not hang.exists():  # the doomed worker is in the middle of its first candidate
        assert doomed.poll() is None and time.monotonic() < deadline, doomed.stdout.read() if doomed.stdout else ""
        time.sleep(0.1)
    survivors = [_start(server_url, "killed", iters, k, trained, grace=grace) for _ in range(2)]
    time.sleep(1.0)
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate(timeout=30)
    killed_number = int(hang.read_text().split("-")[1])
    outputs = _finish(survivors)
    assert any(f"trial #{killed_number} was interrupted" in out for out in outputs), outputs
    study, candidates = _check_study(server_url, "killed", iters, k)
    killed = study.get_trials()[killed_number]
    assert killed.state == TrialState.FAIL and candidates[killed_number].reason == STALE
    reruns = [t for t in study.get_trials() if (t.user_attrs.get("record") or {}).get("rerun_of") == killed_number]
    assert len(reruns) == 1 and reruns[0].state == TrialState.COMPLETE
    assert reruns[0].user_attrs["spec"] == killed.user_attrs["spec"]
    keys = Counter(row["key"] for row in _trained(trained))
    assert keys[killed.user_attrs["spec_key"]] == 2 and sum(keys.values()) == iters * k + 1


def test_workers_starting_together_create_the_study_once(server_url):
    code = "import sys; from flnas.study.storage import open_study; open_study('race', sys.argv[1])"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [subprocess.Popen([sys.executable, "-c", code, server_url], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert open_study("race", server_url, create=False).study_name == "race"


def test_two_workers_on_one_study_train_nothing_twice(study_url, tmp_path):
    url = study_url
    iters, k = 3, 2
    trained = tmp_path / "trained.jsonl"
    # the heuristic starts from one initial spec: the second worker waits for the first candidate instead of
    # proposing that spec again (each duplicate would be an invalid trial and a wasted designer call)
    outputs = _finish([_start(url, "two", iters, k, trained, designer="heuristic") for _ in range(2)])
    assert all(f"RESULT {iters * k}/{iters * k}" in out for out in outputs), outputs
    _study, candidates = _check_study(url, "two", iters, k)
    # two workers that design at the same moment from the same history propose the same spec (the heuristic is
    # deterministic): the later one designs again (outside the claim lock) instead of recording a duplicate
    assert [(c.number, c.status, c.reason) for c in candidates if c.status == "invalid"] == []
    keys = [row["key"] for row in _trained(trained)]
    assert len(keys) == iters * k and len(set(keys)) == len(keys)


def _lock_is_free(url: str, name: str) -> bool:
    """Whether study ``name``'s claim lock is free, asked the way each storage keeps it (without waiting)."""
    import fcntl

    import sqlalchemy

    from flnas.study import workers
    from flnas.study.storage import sqlite_path

    path = sqlite_path(url)
    if path is not None:
        with open(f"{path}.flnas-lock", "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return True
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as con:
            if engine.dialect.name == "postgresql":
                args = {"a": workers._LOCK_NAMESPACE, "b": workers.postgres_lock_key(name)}
                free = con.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:a, :b)"), args).scalar()
                if free:
                    con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:a, :b)"), args)
                return bool(free)
            lock = workers.mysql_lock_name(str(engine.url.database), name)
            return con.execute(sqlalchemy.text("SELECT IS_FREE_LOCK(:n)"), {"n": lock}).scalar() == 1
    finally:
        engine.dispose()


def test_the_claim_lock_of_a_killed_worker_is_freed(study_url):
    """A worker killed while it holds the claim lock does not block the others: the database (or, for SQLite,
    the kernel) frees the lock with the worker's connection (file)."""
    from flnas.study.workers import claim_lock

    code = ("import sys, time; from flnas.study.storage import open_study; from flnas.study.workers import "
            "claim_lock\nwith claim_lock(open_study('held', sys.argv[1])):\n    print('held', flush=True)\n"
            "    time.sleep(600)")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    holder = subprocess.Popen([sys.executable, "-c", code, study_url], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        line = holder.stdout.readline() if holder.stdout else ""
        assert line == "held\n", line + (holder.stdout.read() if holder.stdout else "")
        assert not _lock_is_free(study_url, "held")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=30)
    deadline = time.monotonic() + 60
    while not _lock_is_free(study_url, "held"):  # the server notices the closed connection
        assert time.monotonic() < deadline, "the killed worker's claim lock was never freed"
        time.sleep(0.1)
    with claim_lock(open_study("held", study_url)):  # and the next worker takes it
        assert not _lock_is_free(study_url, "held")

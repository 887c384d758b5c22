"""Read the study back as Candidates (archDNNs and metricDNNs of Algorithm 1) and repair interrupted trials.

The study is the only state: a search that is killed and started again rebuilds everything from here.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from flnas.designers.base import Candidate
from flnas.errors import StudyError

INTERRUPTED = "interrupted (process died during evaluation)"


def candidate_from_trial(trial: FrozenTrial) -> Candidate:
    """One trial as a Candidate; a trial still RUNNING has status "running"."""
    attrs = trial.user_attrs
    if trial.state == TrialState.RUNNING:
        status = "running"
    elif trial.state == TrialState.COMPLETE:
        status = attrs.get("status", "ok")
    else:
        status = attrs.get("status") or "failed"
        if status in ("ok", "running"):  # finished as FAIL without its attrs updated (e.g. killed)
            status = "failed"
    return Candidate(
        number=trial.number,
        iteration=int(attrs.get("iteration") or 0),
        designer=str(attrs.get("designer") or attrs.get("baseline") or ""),
        spec=attrs.get("spec"),
        status=status,
        metrics=attrs.get("metrics"),
        reason=attrs.get("reason"),
        baseline=attrs.get("baseline"),
    )


def load_candidates(study: optuna.Study, *, kind: str | None = "search") -> list[Candidate]:
    """Candidates of one kind ("search", "baseline", "repeat"; None: all), oldest first."""
    trials = study.get_trials(deepcopy=False)
    return [
        candidate_from_trial(t)
        for t in sorted(trials, key=lambda t: t.number)
        if kind is None or t.user_attrs.get("kind") == kind
    ]


def trial_record(study: optuna.Study, number: int) -> dict[str, Any]:
    """The ``record`` user attribute of a trial (prompt, reply, attempts, usage, timings)."""
    return dict(study.get_trials(deepcopy=False)[number].user_attrs.get("record") or {})


def owner() -> dict[str, Any]:
    """Who is evaluating a trial: stored in its record so a resumed search can tell a dead process."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def mark_interrupted(study: optuna.Study, *, kind: str = "search") -> list[int]:
    """Mark trials left RUNNING by a process that died as FAIL ("interrupted"); return their numbers.

    A trial whose evaluating process is still alive on this machine means another search is running on
    the same study right now; that is refused with one sentence instead of corrupting it.
    """
    marked: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("kind") != kind:
            continue
        record = dict(trial.user_attrs.get("record") or {})
        who = record.get("owner") or {}
        if alive_elsewhere(who):
            raise StudyError(
                f"trial #{trial.number} of study {study.study_name!r} is being evaluated by a running "
                f"process (pid {who.get('pid')}); wait for it to finish or stop it before resuming"
            )
        live = optuna.trial.Trial(study, trial._trial_id)
        live.set_user_attr("status", "failed")
        live.set_user_attr("reason", INTERRUPTED)
        study.tell(trial.number, state=TrialState.FAIL)
        marked.append(trial.number)
    return marked


def alive_elsewhere(who: dict[str, Any]) -> bool:
    """True when ``who`` is another live flnas process on this host (a dead or reused pid is not)."""
    pid = who.get("pid")
    if not isinstance(pid, int) or who.get("host") != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
        with open(f"/proc/{pid}/stat", "rb") as fh:
            if fh.read().split(b")")[-1].split()[0] == b"Z":  # zombie: dead, not yet reaped
                return False
    except OSError:
        return True  # alive, but /proc is unavailable (not Linux): assume it is a search
    return b"flnas" in cmdline

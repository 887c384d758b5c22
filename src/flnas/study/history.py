"""Read the study back as Candidates (archDNNs and metricDNNs of Algorithm 1) and repair interrupted trials.

The study is the only state: a search that is killed and started again rebuilds everything from here.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from flnas.records import Candidate, is_evaluated

INTERRUPTED = "interrupted (process died during evaluation)"
STALE = "interrupted (its worker sent no heartbeat for the grace period)"


def candidate_from_trial(trial: FrozenTrial) -> Candidate:
    """One trial as a Candidate; a trial still RUNNING has status "running"."""
    attrs = trial.user_attrs
    reason = attrs.get("reason")
    if trial.state == TrialState.RUNNING:
        status = "running"
    elif trial.state == TrialState.COMPLETE:
        status = attrs.get("status", "ok")
    else:
        status = attrs.get("status") or "failed"
        if status == "running":  # failed by another worker (no heartbeat): its own worker never finished it
            status, reason = "failed", attrs.get("reason") or STALE
        elif status == "ok":  # finished as FAIL without its attrs updated (e.g. killed)
            status = "failed"
    return Candidate(
        number=trial.number,
        iteration=int(attrs.get("iteration") or 0),
        designer=str(attrs.get("designer") or attrs.get("baseline") or ""),
        spec=attrs.get("spec"),
        status=status,
        metrics=attrs.get("metrics"),
        reason=reason,
        baseline=attrs.get("baseline"),
    )


def load_candidates(study: optuna.Study, kind: str | None = "search") -> list[Candidate]:
    """Candidates of one kind ("search", "baseline", "repeat"; None: all), oldest first."""
    trials = study.get_trials(deepcopy=False)
    return [
        candidate_from_trial(t)
        for t in sorted(trials, key=lambda t: t.number)
        if kind is None or t.user_attrs.get("kind") == kind
    ]


def load_trials(study: optuna.Study, kind: str) -> list[tuple[Candidate, dict[str, Any]]]:
    """Candidates of one kind, oldest first, with each trial's user attributes (for repeat_of, seed, ...)."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    return [(candidate_from_trial(t), dict(t.user_attrs)) for t in trials if t.user_attrs.get("kind") == kind]


def evaluated_keys(history: list[Candidate]) -> dict[str, int]:
    """spec_key -> trial number of every evaluated spec (what must not be trained again)."""
    from flnas.space import spec_key

    out: dict[str, int] = {}
    for c in history:
        if c.spec is not None and is_evaluated(c):
            out.setdefault(spec_key(c.spec), c.number)
    return out


def taken_keys(history: list[Candidate], *, but: int | None = None) -> dict[str, int]:
    """spec_key -> trial number of every evaluated spec and every spec being trained (except trial ``but``)."""
    from flnas.space import spec_key

    out = evaluated_keys(history)
    for c in history:
        if c.spec is not None and c.status == "running" and c.number != but:
            out.setdefault(spec_key(c.spec), c.number)
    return out


def open_slot(history: list[Candidate], *, iters: int, k: int) -> tuple[int, int] | None:
    """(iteration, slots to claim) for the first iteration whose k slots are not all held, or None.

    A slot is held by an evaluated candidate or by a trial being designed or trained (by any worker).
    """
    held = Counter(c.iteration for c in history if is_evaluated(c) or c.status == "running")
    for iteration in range(1, iters + 1):
        if held[iteration] < k:
            return iteration, k - held[iteration]
    return None


def trial_record(study: optuna.Study, number: int) -> dict[str, Any]:
    """The ``record`` user attribute of a trial (prompt, reply, attempts, usage, timings)."""
    return dict(study.get_trials(deepcopy=False)[number].user_attrs.get("record") or {})


def host() -> str:
    """This machine's name in trial owners: ``FLNAS_HOST`` if set (machines sharing a host name), else the host name."""
    return os.environ.get("FLNAS_HOST") or socket.gethostname()


def owner() -> dict[str, Any]:
    """Who is evaluating a trial: stored in its record so a resumed search can tell a dead process."""
    return {"host": host(), "pid": os.getpid()}


def mark_interrupted(study: optuna.Study, *, kind: str = "search") -> list[int]:
    """Mark trials left RUNNING by a dead process on this machine as FAIL ("interrupted"); return their numbers.

    Only a trial whose owner ran on this host and whose process is gone is marked here, at once. A trial
    whose process is alive, or that runs on another machine, belongs to another worker of the study: it is
    left alone, and if that worker dies its trial is failed after the heartbeat grace period
    (:func:`flnas.study.workers.fail_stale`). A trial with no owner at all (an older flnas) is marked.
    """
    marked: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("kind") != kind:
            continue
        who = dict(trial.user_attrs.get("record") or {}).get("owner") or {}
        if who and may_be_alive(who):
            continue
        live = optuna.trial.Trial(study, trial._trial_id)
        try:
            live.set_user_attr("status", "failed")
            live.set_user_attr("reason", INTERRUPTED)
            study.tell(trial.number, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker marked it first
            continue
        marked.append(trial.number)
    return marked


def may_be_alive(who: dict[str, Any]) -> bool:
    """True unless ``who`` (a trial's owner) ran on this host and its process is gone.

    A process on another machine cannot be checked by pid; the study's heartbeats decide for it.
    """
    if who.get("host") != host():
        return True
    return alive_elsewhere(who)  # this very process has no trial in flight when a search starts


def alive_elsewhere(who: dict[str, Any]) -> bool:
    """True when ``who`` is another live flnas process on this host (a dead or reused pid is not)."""
    pid = who.get("pid")
    if not isinstance(pid, int) or who.get("host") != host() or pid == os.getpid():
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

"""Give each claimed slot of a pass its spec, designing again where another worker took the same spec meanwhile.

Workers design outside the claim lock (a designer call may take minutes), so two workers that claimed at
the same moment design from the same history and a deterministic designer (the heuristic) proposes the
same spec to both. The spec is assigned to its claim under :func:`flnas.study.workers.claim_lock`, after
a check against every evaluated and running spec: the first worker gets it, and the later one, instead of
recording a duplicate, asks its designer again with the study as it was when it gave the lock up (the
other worker's spec among the pending ones every designer avoids).

The re-design, like every designer call, runs *outside* the lock: an LLM call may take as long as its
timeout, and every other worker's claims would wait for it. Nothing is lost meanwhile: the slot stays
claimed (its RUNNING trial keeps its heartbeat, so no other worker designs that iteration), and the new
spec is checked again under the lock before it is assigned. If yet another worker took it in between, the
slot is designed again, at most :data:`MAX_REDESIGNS` times in all; so no spec is trained twice and the
study ends with ``iters x k`` evaluated candidates.

A duplicate that is the designer's own doing (a spec that was already evaluated or pending when it
designed, or the same spec twice in one answer) is still recorded invalid: designing again would not be
fairer to the designer than any other invalid proposal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import optuna

from flnas.designers.base import DesignContext, Designer, Proposal
from flnas.jsonsafe import json_safe
from flnas.records import Candidate, TaskInfo
from flnas.study import workers
from flnas.study.history import STALE, load_candidates, owner, taken_keys
from flnas.study.recording import record_trial

MAX_REDESIGNS = 2  # designer calls again (outside the claim lock) for specs another worker took meanwhile
_DUPLICATE = "already tried"


@dataclass
class Assignment:
    """A claimed trial with its spec (or why it will not be trained)."""

    trial: optuna.trial.Trial
    spec: Any
    key: str | None
    record: dict[str, Any]
    reason: str | None = None  # recorded invalid (never trained) when set
    lost: bool = False  # another worker gave the claim up (no heartbeat for the grace period)
    redesigns: int = 0  # designer calls made again for this slot because another worker took its spec

    @property
    def trainable(self) -> bool:
        return self.reason is None and not self.lost


def own_candidates(study: optuna.Study, designer: str) -> list[Candidate]:
    """The search candidates this designer made (its search is independent of other designers')."""
    return [c for c in load_candidates(study) if c.designer == designer]


def assign(
    study: optuna.Study,
    heart: workers.Heartbeat,
    claims: list[tuple[optuna.trial.Trial, Proposal]],
    *,
    designed: set[int],
    known: set[str],
    designer: Designer,
    context_for: Callable[[list[Candidate], int], DesignContext],
    choices: Any,
    task: TaskInfo,
    iteration: int,
    design_seconds: float,
    log: Callable[[str], None],
) -> list[Assignment]:
    """Assign ``claims`` their proposals in order; re-design the slots whose spec another worker took.

    ``designed`` holds the positions of claims whose proposal the designer made this pass (not re-runs of
    an interrupted trial); ``known`` the spec keys the designer was given to avoid (evaluated and pending
    ones when it designed). ``context_for(history, redesign)`` builds the context of a re-design. Call it
    without holding the claim lock: it takes the lock only to check and assign, never around a designer call.
    """
    out: dict[int, Assignment] = {}
    known = set(known)
    todo = list(range(len(claims)))
    ours = {trial.number for trial, _ in claims}
    redesigns = 0
    while True:
        with workers.claim_lock(study):
            history = own_candidates(study, designer.name)
            taken = taken_keys(history)
            again: list[int] = []
            for position in todo:
                trial, proposal = claims[position]
                spec, key, reason = check_proposal(proposal, choices, task, taken)
                holder = taken.get(key) if key is not None else None
                if reason and reason.startswith(_DUPLICATE):
                    took = holder not in ours and key not in known and position in designed
                    if took and redesigns < MAX_REDESIGNS:
                        again.append(position)
                        continue
                    if any(c.number == holder and c.status == "running" for c in history):
                        reason = reason.replace(_DUPLICATE, "being trained by another worker")
                out[position] = _give(study, heart, trial, proposal, spec, key, reason, design_seconds, redesigns,
                                      iteration, designer.name, log)
                if out[position].trainable:
                    taken[key] = trial.number
            if not again:
                return [out[position] for position in range(len(claims))]
            redesigns += 1
            log(
                f"iteration {iteration}: another worker took the same design meanwhile; {designer.name} designs "
                f"{len(again)} candidate(s) again"
            )
            history = own_candidates(study, designer.name)  # with the specs just assigned, pending
            context = context_for(history, redesigns)
            known |= set(taken_keys(history))  # what the re-design is shown: proposing one of these is its own doing
        # the lock is free while the designer works (the slots stay claimed); the next round checks its answer
        started = time.monotonic()
        try:
            new = list(designer.propose(context, len(again)))[: len(again)]
        except BaseException:
            workers.withdraw(study, heart, [claims[p][0] for p in again], "the designer call was stopped")
            raise
        design_seconds += (time.monotonic() - started) / max(1, len(new))
        missing = Proposal(spec=None, error=f"designer {designer.name!r} returned no proposal")
        new += [missing] * (len(again) - len(new))
        for position, proposal in zip(again, new, strict=True):
            claims[position] = (claims[position][0], proposal)
        todo = again


def _give(
    study: optuna.Study,
    heart: workers.Heartbeat,
    trial: optuna.trial.Trial,
    proposal: Proposal,
    spec: Any,
    key: str | None,
    reason: str | None,
    design_seconds: float,
    redesigns: int,
    iteration: int,
    designer: str,
    log: Callable[[str], None],
) -> Assignment:
    """Write the spec into the claimed trial (an invalid one is recorded at once, so no worker sees it running)."""
    claimed = dict(trial.user_attrs.get("record") or {})
    record = stored(
        {
            **(proposal.record or {}),
            "design_seconds": round(design_seconds, 3),
            "started": now(),
            "owner": claimed.get("owner") or owner(),
        }
    )
    if redesigns:
        record["redesigns"] = redesigns
    label = f"trial #{trial.number} (iteration {iteration}, {designer})"
    try:
        for name, value in {"spec": spec, "spec_key": key, "record": record}.items():
            trial.set_user_attr(name, value)
        if reason is not None:
            record_trial(study, trial, "invalid", reason, None, record)
    except optuna.exceptions.UpdateFinishedTrialError:  # another worker took this one for dead
        heart.discard(trial._trial_id)
        log(f"{label}: another worker gave this claim up (no heartbeat for the grace period)")
        return Assignment(trial, None, None, record, reason=STALE, lost=True)
    if reason is not None:
        heart.discard(trial._trial_id)
        log(f"{label}: invalid -- {reason}")
    return Assignment(trial, spec, key, record, reason=reason, redesigns=redesigns)


def check_proposal(proposal: Proposal, choices: Any, task: TaskInfo, known: dict[str, int]) -> tuple[Any, Any, Any]:
    """(spec dict or None, spec_key or None, reason it is invalid or None)."""
    from flnas.space import spec_key, validate_spec

    if hasattr(proposal.spec, "model_dump"):
        proposal.spec = proposal.spec.model_dump(mode="json")
    if proposal.error or proposal.spec is None:
        return stored(proposal.spec), None, proposal.error or "the designer returned no architecture"
    checked = validate_spec(proposal.spec, choices, image_size=task.image_size, num_classes=len(task.classes))
    if not checked.ok:
        problems = "; ".join(f"{e.path}: {e.message}" if e.path else e.message for e in checked.errors)
        return stored(proposal.spec), None, f"invalid architecture: {problems}"
    spec = checked.spec.model_dump(mode="json")
    key = spec_key(checked.spec)
    if key in known:
        return spec, key, f"{_DUPLICATE} (trial #{known[key]})"
    return spec, key, None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def stored(value: Any) -> Any:
    """JSON-safe for the study's user attributes (anything unknown becomes its string)."""
    return json_safe(value, stringify=True)

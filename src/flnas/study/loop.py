"""Algorithm 1 over an Optuna study: GetBestMetrics -> designer -> Evaluator, persisted as it goes.

Each pass of the loop reads the study (the only state), takes the best so far, asks the designer for the
proposals this iteration still needs, and records every proposal as a trial *before* training it, so a
process that dies mid-training leaves a RUNNING trial behind that the next run marks as interrupted.

Each designer runs its own search inside the study: its history, best so far, duplicates and iteration
count are its own candidates only, so several designers (the LLM, random, evolution, FaHaNa's RL) can share
one study, one dataset split and one evaluator, and each gets exactly ``iters x k`` evaluated candidates.

Counting (so the loop always ends): the search is done when each iteration 1..``iters`` holds ``k``
*evaluated* candidates (status "ok"; "degenerate", a trained network whose validation predictions are
essentially one class, see :mod:`flnas.study.degenerate`; or "failed" during training such as a NaN loss
or a time budget).
Invalid proposals (the designer found no valid spec, a spec outside Choices, or a duplicate of an
evaluated spec) and interrupted evaluations are recorded but do not count: that iteration is designed
again. Every designer call is a *pass*; a run makes at most ``3 x`` the unfinished iterations passes (at
least 3), then stops and says how many evaluated candidates it has. Resuming gives it a new allowance.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from flnas.designers.base import Candidate, DesignContext, Designer, Proposal, Selection, TaskInfo
from flnas.jsonsafe import json_safe
from flnas.study import recording
from flnas.study.degenerate import DEGENERATE, degenerate_reason
from flnas.study.history import INTERRUPTED, alive_elsewhere, load_candidates, mark_interrupted, owner
from flnas.study.selection import (
    DEFAULT_ACCURACY,
    DEFAULT_RULE,
    DEFAULT_TOLERANCE,
    check_rule,
    get_best,
    objectives,
)

PASSES_PER_ITERATION = 3
_ACC_LABEL = {"balanced": "balanced acc", "plain": "acc"}


@dataclass
class SearchResult:
    """What a run of the search did and where the study stands now."""

    best: Candidate | None  # GetBestMetrics over this designer's candidates (OptDNN)
    candidates: list[Candidate]  # this designer's search candidates in the study, oldest first
    evaluated: int  # evaluated candidates counted towards iters x k
    target: int  # iters x k
    new: list[int] = field(default_factory=list)  # trial numbers created by this run
    interrupted: list[int] = field(default_factory=list)  # trials marked interrupted when this run started
    passes: int = 0  # designer calls made by this run
    stopped: str | None = None  # why the run ended before the target, if it did
    usage: dict[str, int] = field(default_factory=dict)  # the designer's token usage totals
    files_error: str | None = None  # why the run stopped: a candidate's files could not be written


def is_evaluated(candidate: Candidate) -> bool:
    """Counts towards IterMax: trained to the end (ok or degenerate) or failed while training (not interrupted)."""
    if candidate.status in ("ok", DEGENERATE):
        return True
    return candidate.status == "failed" and not (candidate.reason or "").startswith("interrupted")


def evaluated_keys(history: list[Candidate]) -> dict[str, int]:
    """spec_key -> trial number of every evaluated spec (what must not be trained again)."""
    from flnas.space import spec_key

    out: dict[str, int] = {}
    for c in history:
        if c.spec is not None and is_evaluated(c):
            out.setdefault(spec_key(c.spec), c.number)
    return out


def next_iteration(history: list[Candidate], *, iters: int, k: int = 1) -> tuple[int, int] | None:
    """(iteration, proposals still needed) for the first unfinished iteration, or None when done."""
    done = Counter(c.iteration for c in history if is_evaluated(c))
    for iteration in range(1, iters + 1):
        if done[iteration] < k:
            return iteration, k - done[iteration]
    return None


def run_search(
    study: optuna.Study,
    *,
    designer: Designer,
    evaluator: Any,
    task: TaskInfo,
    choices: Any,
    iters: int,
    k: int = 1,
    rule: str = DEFAULT_RULE,
    tolerance: float = DEFAULT_TOLERANCE,
    accuracy: str = DEFAULT_ACCURACY,
    seed: int = 0,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    on_candidate: Callable[[Candidate, Any], None] | None = None,
    max_passes: int | None = None,
) -> SearchResult:
    """Run (or resume) the search on ``study`` until iterations 1..iters each hold k evaluated candidates.

    ``evaluator`` is anything with ``evaluate(spec, *, name, out_dir, on_epoch) -> EvalResult``; artifacts of
    each candidate go to ``out_dir/candidates/<trial number>`` when ``out_dir`` is given (see
    :mod:`flnas.study.recording`). A run folder that stops taking files ends the run after recording the
    candidate's metrics (``files_error``). ``on_candidate(candidate, eval_result_or_None)`` is called
    after each trial is recorded.
    ``rule``, ``tolerance`` and ``accuracy`` (the study's accuracy of record) choose the best so far and
    travel to the designer in its :class:`DesignContext`; ``accuracy`` also sets the first trial value.
    """
    check_rule(rule, tolerance, accuracy)
    selection = Selection(rule=rule, tolerance=tolerance, accuracy=accuracy)
    if iters < 1 or k < 1:
        raise ValueError("iters and k must be at least 1")
    result = SearchResult(best=None, candidates=[], evaluated=0, target=iters * k)
    if out_dir is not None:
        recording.check_out_dir(out_dir)
        recording.recover(study, out_dir, alive=alive_elsewhere, log=log)
    result.interrupted = mark_interrupted(study)
    for number in result.interrupted:
        log(f"trial #{number} was {INTERRUPTED}; its iteration runs again")
    history = _own_candidates(study, designer.name)
    unfinished = sum(1 for i in range(1, iters + 1) if _need(history, i, k) > 0)
    allowance = max_passes if max_passes is not None else PASSES_PER_ITERATION * max(1, unfinished)

    while (todo := next_iteration(history, iters=iters, k=k)) is not None:
        if result.passes >= allowance:
            result.stopped = (
                f"stopped after {result.passes} designer calls in this run without finishing "
                f"iteration {todo[0]} (invalid proposals do not count); run again to continue"
            )
            log(result.stopped)
            break
        iteration, need = todo
        result.passes += 1
        attempt = sum(1 for c in history if c.iteration == iteration)
        context = DesignContext(
            history=list(history),
            best=get_best(history, **selection.as_kwargs()),
            choices=choices,
            task=task,
            iteration=iteration,
            rng=np.random.default_rng([seed, iteration, attempt]),
            log=log,
            selection=selection,
        )
        log(
            f"iteration {iteration}/{iters}: {designer.name} designs {need} candidate(s)"
            + (f" (attempt {attempt + 1})" if attempt else "")
        )
        started = time.monotonic()
        proposals = list(designer.propose(context, need))[:need]
        design_seconds = (time.monotonic() - started) / max(1, len(proposals))
        if not proposals:
            proposals = [Proposal(spec=None, error=f"designer {designer.name!r} returned no proposal")]
        for proposal in proposals:
            candidate, evaluation, files_error = _run_one(
                study,
                proposal,
                designer=designer,
                evaluator=evaluator,
                task=task,
                choices=choices,
                iteration=iteration,
                seed=seed,
                out_dir=out_dir,
                design_seconds=design_seconds,
                known=evaluated_keys(history),
                accuracy=accuracy,
                log=log,
                on_epoch=on_epoch,
            )
            history.append(candidate)
            result.new.append(candidate.number)
            designer.observe(candidate)
            if on_candidate is not None:
                on_candidate(candidate, evaluation)
            if files_error is not None:
                result.stopped = result.files_error = files_error  # the caller reports it
                break
        if result.files_error is not None:
            break

    result.candidates = _own_candidates(study, designer.name)
    result.evaluated = sum(1 for c in result.candidates if is_evaluated(c) and 1 <= c.iteration <= iters)
    result.best = get_best(result.candidates, **selection.as_kwargs())
    result.usage = dict(designer.usage() or {})
    return result


def _own_candidates(study: optuna.Study, designer: str) -> list[Candidate]:
    """The search candidates this designer made (its search is independent of other designers')."""
    return [c for c in load_candidates(study) if c.designer == designer]


def _need(history: list[Candidate], iteration: int, k: int) -> int:
    return k - sum(1 for c in history if c.iteration == iteration and is_evaluated(c))


def _run_one(
    study: optuna.Study,
    proposal: Proposal,
    *,
    designer: Designer,
    evaluator: Any,
    task: TaskInfo,
    choices: Any,
    iteration: int,
    seed: int,
    out_dir: Path | None,
    design_seconds: float,
    known: dict[str, int],
    accuracy: str,
    log: Callable[[str], None],
    on_epoch: Callable[[int, dict[str, Any]], None] | None,
) -> tuple[Candidate, Any, str | None]:
    """Record one proposal as a trial; train it unless it is invalid or already tried.

    Returns the candidate, the evaluation, and why the run must stop when its files could not be written.
    """
    trial = study.ask()
    record = _stored(
        {
            **(proposal.record or {}),
            "design_seconds": round(design_seconds, 3),
            "started": _now(),
            "owner": owner(),
        }
    )
    spec, key, reason = _check(proposal, choices, task, known)
    attrs = {
        "kind": "search",
        "iteration": iteration,
        "designer": designer.name,
        "seed": seed,
        "spec": spec,
        "spec_key": key,
        "status": "running",
        "reason": None,
        "metrics": None,
        "record": record,
    }
    for name, value in attrs.items():
        trial.set_user_attr(name, value)
    label = f"trial #{trial.number} (iteration {iteration}, {designer.name})"
    if reason is not None:
        _finish(study, trial, "invalid", reason, None, record)
        log(f"{label}: invalid -- {reason}")
        return _candidate(trial.number, iteration, designer.name, spec, "invalid", None, reason), None, None

    started = time.monotonic()
    try:  # the files are written below, by this loop, so that a full disk cannot lose the measurement
        evaluation = evaluator.evaluate(spec, name=f"trial-{trial.number}", out_dir=None, on_epoch=on_epoch)
    except KeyboardInterrupt:
        _finish(study, trial, "failed", "interrupted (stopped by the user during evaluation)", None, record)
        raise
    except Exception as exc:  # the evaluator promises not to raise; if it does, record it and go on
        evaluation = None
        status, why, metrics = "failed", f"evaluator error: {type(exc).__name__}: {exc}", None
    else:
        status = getattr(evaluation, "status", "failed")
        why = getattr(evaluation, "reason", None)
        metrics = _stored(getattr(evaluation, "metrics", None) or None)
        if status == "ok" and ((metrics or {}).get("val") or {}).get("accuracy") is None:
            status, why = "failed", "the evaluator returned no validation accuracy"
        if status == "ok" and (degenerate := degenerate_reason(metrics)) is not None:
            status, why = DEGENERATE, degenerate
    record["eval_seconds"] = round(time.monotonic() - started, 3)
    record["finished"] = _now()
    candidate = _candidate(trial.number, iteration, designer.name, spec, status, metrics, why)
    values = list(objectives(candidate, accuracy)) if status == "ok" else None
    files_error = None
    if out_dir is not None and getattr(evaluation, "status", None) == "ok":
        payload = {"status": status, "reason": why, "metrics": metrics, "record": record, "values": values}
        files_error = recording.stage(out_dir, trial.number, evaluation, spec=spec, task=task, payload=payload)
    _finish(study, trial, status, why, metrics, record, values=values)
    if "artifacts" in record:
        try:
            recording.publish(out_dir, trial.number)
        except OSError as exc:  # the next run finishes the rename from the staged folder
            files_error = f"{record['artifacts']}: cannot rename its folder into place ({exc.strerror or exc})"
    if files_error is not None:
        files_error = recording.stop_message(study.study_name, trial.number, files_error)
    if status == "ok":
        acc, unf, params = objectives(candidate, accuracy)
        log(
            f"{label}: ok in {record['eval_seconds']:.1f}s -- val {_ACC_LABEL[accuracy]} {100 * acc:.2f}%, "
            f"unfairness {unf:.4f}, params {int(params):,}"
        )
    elif status == DEGENERATE:
        log(f"{label}: degenerate -- {why}")
    else:
        log(f"{label}: failed -- {why}")
    return candidate, evaluation, files_error


def _check(proposal: Proposal, choices: Any, task: TaskInfo, known: dict[str, int]) -> tuple[Any, Any, Any]:
    """(spec dict or None, spec_key or None, reason it is invalid or None)."""
    from flnas.space import spec_key, validate_spec

    if hasattr(proposal.spec, "model_dump"):
        proposal.spec = proposal.spec.model_dump(mode="json")
    if proposal.error or proposal.spec is None:
        return _stored(proposal.spec), None, proposal.error or "the designer returned no architecture"
    checked = validate_spec(proposal.spec, choices, image_size=task.image_size, num_classes=len(task.classes))
    if not checked.ok:
        problems = "; ".join(f"{e.path}: {e.message}" if e.path else e.message for e in checked.errors)
        return _stored(proposal.spec), None, f"invalid architecture: {problems}"
    spec = checked.spec.model_dump(mode="json")
    key = spec_key(checked.spec)
    if key in known:
        return spec, key, f"already tried (trial #{known[key]})"
    return spec, key, None


def _finish(
    study: optuna.Study,
    trial: optuna.trial.Trial,
    status: str,
    reason: str | None,
    metrics: dict[str, Any] | None,
    record: dict[str, Any],
    values: list[float] | None = None,
) -> None:
    recording.record_trial(study, trial, status, reason, metrics, record, values)


def _candidate(
    number: int, iteration: int, designer: str, spec: Any, status: str, metrics: Any, reason: str | None
) -> Candidate:
    return Candidate(
        number=number,
        iteration=iteration,
        designer=designer,
        spec=spec,
        status=status,
        metrics=metrics,
        reason=reason,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _stored(value: Any) -> Any:
    """JSON-safe for the study's user attributes (anything unknown becomes its string)."""
    return json_safe(value, stringify=True)

"""Algorithm 1 over an Optuna study: GetBestMetrics -> designer -> Evaluator, persisted as it goes.

Each pass of the loop reads the study (the only state), takes the best so far, *claims* the slots this
iteration still needs (RUNNING trials, created under the study's claim lock before the designer is called),
asks the designer for that many proposals, and gives each claim its spec before training it, so a process
that dies mid-training leaves a RUNNING trial behind that the next run (or another worker, after the
heartbeat grace period) marks as interrupted. Several processes running this loop on one study are workers
of one search: see :mod:`flnas.study.workers`.

Each designer runs its own search inside the study: its history, best so far, duplicates and iteration
count are its own candidates only, so several designers (the LLM, random, evolution, FaHaNa's RL) can share
one study, one dataset split and one evaluator, and each gets exactly ``iters x k`` evaluated candidates.

Counting (so the loop always ends): the search is done when each iteration 1..``iters`` holds ``k``
*evaluated* candidates (status "ok"; "degenerate", a trained network whose validation predictions are
essentially one class, see :mod:`flnas.study.degenerate`; or "failed" during training such as a NaN loss
or a time budget).
Invalid proposals (the designer found no valid spec, a spec outside Choices, or a duplicate of an
evaluated or running spec) are recorded but do not count: that iteration is designed again. An interrupted
evaluation does not count either: its spec is trained again (at most twice), then its iteration is designed
again. Every designer call is a *pass*; a run makes at most ``3 x`` the unfinished iterations passes (at
least 3), then stops and says how many evaluated candidates it has. Resuming gives it a new allowance.
A worker whose open slots are all held by other workers' running trials waits for them (``poll`` seconds).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from flnas.designers.base import DesignContext, Designer, Proposal
from flnas.records import (
    DEFAULT_ACCURACY,
    DEFAULT_RULE,
    DEFAULT_TOLERANCE,
    Candidate,
    Selection,
    TaskInfo,
    check_rule,
    get_best,
    is_evaluated,
    objectives,
)
from flnas.study import assign, recording, workers
from flnas.study.degenerate import DEGENERATE, degenerate_reason
from flnas.study.history import (
    STALE,
    mark_interrupted,
    may_be_alive,
    open_slot,
    taken_keys,
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
    redesigns: int = 0  # designer calls made again because another worker took the same spec meanwhile
    stopped: str | None = None  # why the run ended before the target, if it did
    usage: dict[str, int] = field(default_factory=dict)  # the designer's token usage totals
    files_error: str | None = None  # why the run stopped: a candidate's files could not be written


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
    poll: float = 2.0,
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
        recording.recover(study, out_dir, alive=may_be_alive, log=log)
    heart = workers.Heartbeat(study)
    try:
        _search(study, result, heart, designer=designer, evaluator=evaluator, task=task, choices=choices,
                iters=iters, k=k, selection=selection, seed=seed, out_dir=out_dir, log=log, on_epoch=on_epoch,
                on_candidate=on_candidate, max_passes=max_passes, poll=poll)
    finally:
        heart.close()
    result.candidates = assign.own_candidates(study, designer.name)
    result.evaluated = sum(1 for c in result.candidates if is_evaluated(c) and 1 <= c.iteration <= iters)
    result.best = get_best(result.candidates, **selection.as_kwargs())
    result.usage = dict(designer.usage() or {})
    return result


def _search(
    study: optuna.Study,
    result: SearchResult,
    heart: workers.Heartbeat,
    *,
    designer: Designer,
    evaluator: Any,
    task: TaskInfo,
    choices: Any,
    iters: int,
    k: int,
    selection: Selection,
    seed: int,
    out_dir: Path | None,
    log: Callable[[str], None],
    on_epoch: Callable[[int, dict[str, Any]], None] | None,
    on_candidate: Callable[[Candidate, Any], None] | None,
    max_passes: int | None,
    poll: float,
) -> None:
    """Claim, design, train until every slot of iterations 1..iters is evaluated (by any worker)."""
    allowance: int | None = max_passes
    waiting_for: list[int] | None = None
    noted = False
    while True:
        with workers.claim_lock(study):
            for number in _fail_dead(study):
                result.interrupted.append(number)
                log(f"trial #{number} was interrupted (its worker stopped); its candidate is trained again")
            history = assign.own_candidates(study, designer.name)
            if not noted and any(c.status == "running" for c in history) and workers.is_sqlite(study):
                noted = True  # this worker's own trials are all finished here: these are another worker's
                log(
                    "note: several workers share this SQLite study; that works for a few on one machine, "
                    "PostgreSQL is the storage for more (docs/search.md, Workers)"
                )
            if allowance is None:
                unfinished = sum(1 for i in range(1, iters + 1) if _need(history, i, k) > 0)
                allowance = PASSES_PER_ITERATION * max(1, unfinished)
            slot = open_slot(history, iters=iters, k=k)
            running = [c.number for c in history if c.status == "running" and 1 <= c.iteration <= iters]
            if slot is None and not running:
                return
            if slot is None or (running and not any(is_evaluated(c) for c in history)):
                # every slot is held, or another worker trains the first candidate: designers start from an
                # empty history in one way (the heuristic's initial spec), so wait for it to be evaluated
                claims: list[tuple[optuna.trial.Trial, Proposal | None]] = []
            else:
                iteration, need = slot
                reruns = workers.reruns(study, history, iteration, need)
                if len(reruns) < need and result.passes >= allowance:
                    result.stopped = (
                        f"stopped after {result.passes} designer calls in this run without finishing "
                        f"iteration {iteration} (invalid proposals do not count); run again to continue"
                    )
                    log(result.stopped)
                    return
                attempt = sum(1 for c in history if c.iteration == iteration)
                claims = [workers.claim(study, heart, designer.name, iteration, seed, r) for r in reruns]
                fresh = need - len(reruns)
                claims += [workers.claim(study, heart, designer.name, iteration, seed) for _ in range(fresh)]
        if not claims:  # every open slot is held by another worker's trial: wait for it to finish or die
            if running != waiting_for:
                log(f"waiting for trial(s) {', '.join(f'#{n}' for n in running)} of other workers")
                waiting_for = running
            time.sleep(poll)
            continue
        waiting_for = None
        designed = {position for position, (_, proposal) in enumerate(claims) if proposal is None}
        design_seconds = 0.0

        context_for = partial(design_context, seed=seed, iteration=iteration, attempt=attempt, choices=choices,
                              task=task, selection=selection, log=log)
        if designed:
            result.passes += 1
            log(
                f"iteration {iteration}/{iters}: {designer.name} designs {len(designed)} candidate(s)"
                + (f" (attempt {attempt + 1})" if attempt else "")
            )
            started = time.monotonic()
            try:
                proposals = list(designer.propose(context_for(history), len(designed)))[: len(designed)]
            except BaseException:
                workers.withdraw(study, heart, [claims[p][0] for p in designed], "the designer call was stopped")
                raise
            design_seconds = (time.monotonic() - started) / max(1, len(proposals))
            missing = f"designer {designer.name!r} returned no proposal"
            proposals += [Proposal(spec=None, error=missing)] * (len(designed) - len(proposals))
            given = iter(proposals)
            claims = [(trial, proposal or next(given)) for trial, proposal in claims]
        else:
            log(f"iteration {iteration}/{iters}: trains again what an interrupted trial was training")
        assignments = assign.assign(
            study, heart, claims, designed=designed, known=set(taken_keys(history)), designer=designer,
            context_for=context_for, choices=choices, task=task, iteration=iteration,
            design_seconds=design_seconds, log=log,
        )
        for position, claimed in enumerate(assignments):
            try:
                candidate, evaluation, files_error = _evaluate_claim(
                    study, claimed, designer=designer, evaluator=evaluator, task=task, iteration=iteration,
                    out_dir=out_dir, accuracy=selection.accuracy, log=log, on_epoch=on_epoch,
                )
            finally:
                heart.discard(claimed.trial._trial_id)
            result.new.append(candidate.number)
            result.redesigns += claimed.redesigns
            designer.observe(candidate)
            if on_candidate is not None:
                on_candidate(candidate, evaluation)
            if files_error is not None:
                result.stopped = result.files_error = files_error  # the caller reports it
                rest = [a.trial for a in assignments[position + 1 :] if a.trainable]
                workers.withdraw(study, heart, rest, "the run stopped before it")
                return


def design_context(
    history: list[Candidate],
    redesign: int = 0,
    *,
    seed: int,
    iteration: int,
    attempt: int,
    choices: Any,
    task: TaskInfo,
    selection: Selection,
    log: Callable[[str], None],
) -> DesignContext:
    """What the designer sees: the finished candidates, the best so far, and the specs being trained (to avoid).

    ``history`` is the designer's own candidates: each designer gets only its own. `flnas prompt` builds its
    context here too, so it shows exactly what the loop would send.
    """
    return DesignContext(
        history=[c for c in history if c.status != "running"],
        best=get_best(history, **selection.as_kwargs()),
        choices=choices,
        task=task,
        iteration=iteration,
        rng=np.random.default_rng([seed, iteration, attempt] + ([redesign] if redesign else [])),
        log=log,
        selection=selection,
        pending=[c for c in history if c.status == "running"],
    )


def _fail_dead(study: optuna.Study) -> list[int]:
    """Trials of dead workers, failed now: a gone process on this machine, or no heartbeat for the grace period."""
    return sorted(set(mark_interrupted(study)) | set(workers.fail_stale(study)))


def _need(history: list[Candidate], iteration: int, k: int) -> int:
    return k - sum(1 for c in history if c.iteration == iteration and is_evaluated(c))


def _evaluate_claim(
    study: optuna.Study,
    claimed: assign.Assignment,
    *,
    designer: Designer,
    evaluator: Any,
    task: TaskInfo,
    iteration: int,
    out_dir: Path | None,
    accuracy: str,
    log: Callable[[str], None],
    on_epoch: Callable[[int, dict[str, Any]], None] | None,
) -> tuple[Candidate, Any, str | None]:
    """Train a claimed trial's spec unless it was found invalid (or given up) when it was assigned.

    Returns the candidate, the evaluation, and why the run must stop when its files could not be written.
    """
    trial, spec, record = claimed.trial, claimed.spec, claimed.record
    label = f"trial #{trial.number} (iteration {iteration}, {designer.name})"
    if not claimed.trainable:
        status = "failed" if claimed.lost else "invalid"
        return _candidate(trial.number, iteration, designer.name, spec, status, None, claimed.reason), None, None
    record["started"] = assign.now()
    started = time.monotonic()
    try:  # the files are written below, by this loop, so that a full disk cannot lose the measurement
        evaluation = evaluator.evaluate(spec, name=f"trial-{trial.number}", out_dir=None, on_epoch=on_epoch)
    except KeyboardInterrupt:
        why = "interrupted (stopped by the user during evaluation)"
        recording.record_trial(study, trial, "failed", why, None, record)
        raise
    except Exception as exc:  # the evaluator promises not to raise; if it does, record it and go on
        evaluation = None
        status, why, metrics = "failed", f"evaluator error: {type(exc).__name__}: {exc}", None
    else:
        status = getattr(evaluation, "status", "failed")
        why = getattr(evaluation, "reason", None)
        metrics = assign.stored(getattr(evaluation, "metrics", None) or None)
        if status == "ok" and ((metrics or {}).get("val") or {}).get("accuracy") is None:
            status, why = "failed", "the evaluator returned no validation accuracy"
        if status == "ok" and (degenerate := degenerate_reason(metrics)) is not None:
            status, why = DEGENERATE, degenerate
    record["eval_seconds"] = round(time.monotonic() - started, 3)
    record["finished"] = assign.now()
    candidate = _candidate(trial.number, iteration, designer.name, spec, status, metrics, why)
    values = list(objectives(candidate, accuracy)) if status == "ok" else None
    files_error = None
    if out_dir is not None and getattr(evaluation, "status", None) == "ok":
        payload = {"status": status, "reason": why, "metrics": metrics, "record": record, "values": values}
        files_error = recording.stage(out_dir, trial.number, evaluation, spec=spec, task=task, payload=payload)
    try:
        recording.record_trial(study, trial, status, why, metrics, record, values=values)
    except optuna.exceptions.UpdateFinishedTrialError:  # another worker took it for dead (no heartbeat)
        if out_dir is not None:
            recording.discard(out_dir, trial.number)
        log(f"{label}: another worker gave this trial up (no heartbeat for the grace period); its result is dropped")
        lost = _candidate(trial.number, iteration, designer.name, spec, "failed", None, STALE)
        return lost, evaluation, None
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



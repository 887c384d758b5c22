"""What the study records about each candidate, and how candidates compare (GetBestMetrics).

These are the records every layer reads: designers rank the history with them, the study loop chooses the
best so far, the report builds Table I. They sit at the bottom of the package (nothing here imports another
flnas module but ``flnas.errors``) so that no layer has to import one above it to read a record.

Every comparison uses the study's **accuracy of record** (``accuracy``): validation *balanced* accuracy
(the mean per-class recall; the default for new studies) or plain validation accuracy (the paper's preset,
and every study created before the setting existed). On imbalanced data such as ISIC, where NV is about
half of the images, plain accuracy rewards a network that answers the majority class for every image (and
such a network also has zero EODD/EOPP).

The **objective vector** of a candidate is (val accuracy of record up, val unfairness down, params down):
the study's trial values. An undefined unfairness (no group pair) counts as the worst value, 1.0
(:func:`unfairness_value`).

**GetBestMetrics.** The paper orders the objectives as fairness over accuracy over hardware efficiency. A
pure "lowest unfairness" rule would happily pick a network that is equally bad for everyone, so the default
rule ("fair") first keeps the candidates whose accuracy is within ``tolerance`` (absolute, 0.02 = two
percentage points) of the best accuracy, then takes the lowest validation unfairness among them, and
breaks ties by fewer params. Other rules:

- ``accuracy``: the highest accuracy; ties by lower unfairness, then fewer params.
- ``unfairness``: the lowest val unfairness over all ok candidates; ties by higher accuracy, then params.
- ``params``: within ``tolerance`` of the best accuracy, the fewest params; ties by lower unfairness.
- ``weighted``: the highest scalar :func:`fitness` (also what evolution's tournaments use).
- ``balanced``: as ``fair``, always on val balanced accuracy whatever the study's accuracy setting (from
  before the setting existed; with ``accuracy="balanced"`` it is the same as ``fair``).

Only candidates that are :func:`is_ok` take part (status "ok"; never "degenerate", see
:mod:`flnas.study.degenerate`), and only their *validation* metrics are read; test metrics are for the
report. The remaining ties go to the earlier trial, so the choice is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flnas.errors import FlnasError

DEGENERATE = "degenerate"  # status of a trained candidate whose predictions are essentially one class
ACCURACIES = ("balanced", "plain")  # the study's accuracy of record (DESIGN.md): balanced is the default
RULES = ("fair", "accuracy", "unfairness", "params", "weighted", "balanced")
_WITHIN_TOLERANCE = ("fair", "params", "balanced")  # rules that first keep the near-best accuracies
DEFAULT_RULE = "fair"
DEFAULT_TOLERANCE = 0.02
DEFAULT_ACCURACY = "balanced"  # for new studies; a study without the setting is "plain" (study.setup)
# weighted rule: fairness counts twice as much as accuracy; params enter per decade (10x more params
# costs as much as 0.02 of accuracy), so efficiency only decides between otherwise close candidates.
DEFAULT_WEIGHTS = {"accuracy": 1.0, "unfairness": 2.0, "log10_params": 0.02}


# --- records -------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One evaluated (or failed) proposal as stored in the study."""

    number: int  # Optuna trial number
    iteration: int  # 1-based FL-NAS iteration
    designer: str
    spec: dict[str, Any] | None  # the architecture JSON (None when no valid spec was obtained)
    status: str  # "ok" | "degenerate" | "failed" | "invalid" | "running"
    metrics: dict[str, Any] | None = None  # the evaluator's JSON object (see `flnas evaluate --json`)
    reason: str | None = None  # why it failed, when it did
    baseline: str | None = None  # baseline model name (e.g. "resnet18") for baseline rows


@dataclass
class TaskInfo:
    """What the network is for: shown to LLMs and used to size the output layer."""

    dataset: str  # e.g. "ISIC 2019"
    classes: list[str]
    groups: dict[str, list[str]]  # attribute -> groups, e.g. {"sex": ["male", "female"], "age": [...]}
    image_size: int
    env: str  # target device, e.g. "Raspberry Pi 4"


@dataclass(frozen=True)
class Selection:
    """How a study compares candidates: GetBestMetrics' rule and tolerance, and the accuracy of record.

    ``accuracy`` is "balanced" (mean per-class recall; the default for new studies) or "plain" (the paper's
    preset). It travels in every ``DesignContext`` so that each designer and the prompt generator rank
    with the study's own settings.
    """

    rule: str = DEFAULT_RULE
    tolerance: float = DEFAULT_TOLERANCE
    accuracy: str = DEFAULT_ACCURACY

    def as_kwargs(self) -> dict[str, Any]:
        """``rule``, ``tolerance`` and ``accuracy`` as keyword arguments of the selection functions."""
        return {"rule": self.rule, "tolerance": self.tolerance, "accuracy": self.accuracy}


# --- predicates ----------------------------------------------------------------------------------------


def is_evaluated(candidate: Candidate) -> bool:
    """Counts towards IterMax: trained to the end (ok or degenerate) or failed while training (not interrupted)."""
    if candidate.status in ("ok", DEGENERATE):
        return True
    return candidate.status == "failed" and not (candidate.reason or "").startswith("interrupted")


def is_ok(candidate: Candidate) -> bool:
    """Takes part in selection: evaluated successfully (not degenerate) and has validation metrics."""
    return candidate.status == "ok" and bool(candidate.metrics) and "val" in (candidate.metrics or {})


# --- the objective vector ------------------------------------------------------------------------------


def check_accuracy(accuracy: str) -> None:
    """Reject an accuracy setting other than balanced or plain with one sentence."""
    if accuracy not in ACCURACIES:
        raise FlnasError(f"--accuracy {accuracy!r} is not an accuracy setting; choose balanced or plain")


def accuracy_key(accuracy: str) -> str:
    """The metrics key of an accuracy setting: ``balanced_accuracy`` or ``accuracy``."""
    check_accuracy(accuracy)
    return "balanced_accuracy" if accuracy == "balanced" else "accuracy"


def unfairness_value(value: Any) -> float:
    """An unfairness as an objective: undefined (None, not a finite number) counts as the worst, 1.0."""
    return _num(value, 1.0)


def objectives(candidate: Candidate, accuracy: str = DEFAULT_ACCURACY) -> tuple[float, float, float]:
    """(val accuracy of record, val unfairness with None as 1.0, params) -- the study's trial values."""
    metrics: dict[str, Any] = candidate.metrics or {}
    val = metrics.get("val") or {}
    acc = _num(val.get(accuracy_key(accuracy)), 0.0)
    params = _num(metrics.get("params"), math.inf)
    return acc, unfairness_value(val.get("unfairness")), params


def fitness(
    candidate: Candidate, weights: dict[str, float] | None = None, *, accuracy: str = DEFAULT_ACCURACY
) -> float:
    """One number, higher is better: ``acc - 2 * unfairness - 0.02 * log10(params)`` by default."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    acc, unfairness, params = objectives(candidate, accuracy)
    log_params = math.log10(params) if 0 < params < math.inf else 12.0
    return w["accuracy"] * acc - w["unfairness"] * unfairness - w["log10_params"] * log_params


def pareto_front(
    candidates: Sequence[Candidate], *, accuracy: str = DEFAULT_ACCURACY, params: bool = True
) -> list[Candidate]:
    """Ok candidates that no other one dominates on (val accuracy up, val unfairness down, params down).

    ``params=False`` compares accuracy and unfairness alone (the report's trade-off plot). Best accuracy
    first; ties by lower unfairness, fewer params, the earlier trial.
    """
    pool = [c for c in candidates if is_ok(c)]
    points = {id(c): objectives(c, accuracy)[: 3 if params else 2] for c in pool}

    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        no_worse = a[0] >= b[0] and all(x <= y for x, y in zip(a[1:], b[1:], strict=True))
        return no_worse and (a[0] > b[0] or any(x < y for x, y in zip(a[1:], b[1:], strict=True)))

    front = [c for c in pool if not any(dominates(points[id(o)], points[id(c)]) for o in pool if o is not c)]
    return sorted(front, key=lambda c: (-objectives(c, accuracy)[0], *objectives(c, accuracy)[1:], c.number))


# --- GetBestMetrics --------------------------------------------------------------------------------------


def check_rule(rule: str, tolerance: float, accuracy: str = DEFAULT_ACCURACY) -> None:
    """Reject an unknown rule, a negative tolerance or an unknown accuracy setting with one sentence."""
    check_accuracy(accuracy)
    if rule not in RULES:
        raise FlnasError(f"--selection {rule!r} is not a selection rule; choose one of {', '.join(RULES)}")
    if not (tolerance >= 0):
        raise FlnasError(f"--tolerance {tolerance} must be a non-negative accuracy difference, e.g. 0.02")


def get_best(
    candidates: Sequence[Candidate],
    *,
    rule: str = DEFAULT_RULE,
    tolerance: float = DEFAULT_TOLERANCE,
    accuracy: str = DEFAULT_ACCURACY,
    weights: dict[str, float] | None = None,
) -> Candidate | None:
    """The best ok candidate under ``rule`` (see the module docstring), or None when there is none."""
    check_rule(rule, tolerance, accuracy)
    pool = [c for c in candidates if is_ok(c)]
    if not pool:
        return None
    if rule == "balanced":
        accuracy = "balanced"
    if rule in _WITHIN_TOLERANCE:
        best_acc = max(objectives(c, accuracy)[0] for c in pool)
        pool = [c for c in pool if objectives(c, accuracy)[0] >= best_acc - tolerance - 1e-12]
    return min(pool, key=lambda c: _sort_key(c, rule, accuracy, weights))


def rank(
    candidates: Sequence[Candidate],
    *,
    rule: str = DEFAULT_RULE,
    tolerance: float = DEFAULT_TOLERANCE,
    accuracy: str = DEFAULT_ACCURACY,
    weights: dict[str, float] | None = None,
) -> list[Candidate]:
    """Ok candidates best first: the best under ``rule``, then the best of the rest, and so on.

    Ranking by repeated selection keeps ``rank(...)[0] == get_best(...)`` for every rule, and makes
    "Search-2" the candidate that would have been chosen had Search-1 not existed.
    """
    rest = [c for c in candidates if is_ok(c)]
    ranked: list[Candidate] = []
    while rest:
        best = get_best(rest, rule=rule, tolerance=tolerance, accuracy=accuracy, weights=weights)
        assert best is not None
        ranked.append(best)
        rest = [c for c in rest if c is not best]
    return ranked


def _sort_key(c: Candidate, rule: str, accuracy: str, weights: dict[str, float] | None) -> tuple[float, ...]:
    acc, unfairness, params = objectives(c, accuracy)
    if rule in ("fair", "balanced"):
        return (unfairness, params, -acc, c.number)
    if rule == "accuracy":
        return (-acc, unfairness, params, c.number)
    if rule == "unfairness":
        return (unfairness, -acc, params, c.number)
    if rule == "params":
        return (params, unfairness, -acc, c.number)
    return (-fitness(c, weights, accuracy=accuracy), c.number)


def _num(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default

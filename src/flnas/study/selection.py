"""GetBestMetrics: which candidate is the best so far, by a documented and configurable rule.

The paper orders the objectives as fairness over accuracy over hardware efficiency. A pure "lowest
unfairness" rule would happily pick a network that is equally bad for everyone, so the default rule
("fair") first keeps the candidates whose validation accuracy is within ``tolerance`` (absolute, 0.02 =
two percentage points) of the best validation accuracy, then takes the lowest validation unfairness among
them, and breaks ties by fewer params. Other rules:

- ``accuracy``: the highest val accuracy; ties by lower unfairness, then fewer params.
- ``unfairness``: the lowest val unfairness over all ok candidates; ties by higher accuracy, then params.
- ``params``: within ``tolerance`` of the best val accuracy, the fewest params; ties by lower unfairness.
- ``weighted``: the highest scalar :func:`fitness` (also what evolution's tournaments use).
- ``balanced``: as ``fair``, but on val *balanced* accuracy (the mean per-class recall): within
  ``tolerance`` of the best balanced accuracy, the lowest unfairness. For imbalanced data such as ISIC, where
  a network answering the majority class for every image has a high accuracy (and zero EODD/EOPP).

Only candidates with status "ok" take part, and only their *validation* metrics are read; test metrics are
for the report. An undefined unfairness (no group pair) counts as the worst value, 1.0, as in the trial
values. The remaining ties go to the earlier trial, so the choice is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from flnas.designers.base import Candidate
from flnas.errors import FlnasError

RULES = ("fair", "accuracy", "unfairness", "params", "weighted", "balanced")
_WITHIN_TOLERANCE = ("fair", "params", "balanced")  # rules that first keep the near-best accuracies
DEFAULT_RULE = "fair"
DEFAULT_TOLERANCE = 0.02
# weighted rule: fairness counts twice as much as accuracy; params enter per decade (10x more params
# costs as much as 0.02 of accuracy), so efficiency only decides between otherwise close candidates.
DEFAULT_WEIGHTS = {"accuracy": 1.0, "unfairness": 2.0, "log10_params": 0.02}


def objectives(candidate: Candidate) -> tuple[float, float, float]:
    """(val accuracy, val unfairness with None as 1.0, params) -- the study's trial values."""
    metrics: dict[str, Any] = candidate.metrics or {}
    val = metrics.get("val") or {}
    acc = _num(val.get("accuracy"), 0.0)
    unfairness = _num(val.get("unfairness"), 1.0)
    params = _num(metrics.get("params"), math.inf)
    return acc, unfairness, params


def fitness(candidate: Candidate, weights: dict[str, float] | None = None) -> float:
    """One number, higher is better: ``acc - 2 * unfairness - 0.02 * log10(params)`` by default."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    acc, unfairness, params = objectives(candidate)
    log_params = math.log10(params) if 0 < params < math.inf else 12.0
    return w["accuracy"] * acc - w["unfairness"] * unfairness - w["log10_params"] * log_params


def is_ok(candidate: Candidate) -> bool:
    """Takes part in selection: evaluated successfully and has validation metrics."""
    return candidate.status == "ok" and bool(candidate.metrics) and "val" in (candidate.metrics or {})


def check_rule(rule: str, tolerance: float) -> None:
    """Reject an unknown rule or a negative tolerance with one sentence."""
    if rule not in RULES:
        raise FlnasError(f"--selection {rule!r} is not a selection rule; choose one of {', '.join(RULES)}")
    if not (tolerance >= 0):
        raise FlnasError(f"--tolerance {tolerance} must be a non-negative accuracy difference, e.g. 0.02")


def get_best(
    candidates: Sequence[Candidate],
    *,
    rule: str = DEFAULT_RULE,
    tolerance: float = DEFAULT_TOLERANCE,
    weights: dict[str, float] | None = None,
) -> Candidate | None:
    """The best ok candidate under ``rule`` (see the module docstring), or None when there is none."""
    check_rule(rule, tolerance)
    pool = [c for c in candidates if is_ok(c)]
    if not pool:
        return None
    if rule in _WITHIN_TOLERANCE:
        best_acc = max(_accuracy(c, rule) for c in pool)
        pool = [c for c in pool if _accuracy(c, rule) >= best_acc - tolerance - 1e-12]
    return min(pool, key=lambda c: _sort_key(c, rule, weights))


def rank(
    candidates: Sequence[Candidate],
    *,
    rule: str = DEFAULT_RULE,
    tolerance: float = DEFAULT_TOLERANCE,
    weights: dict[str, float] | None = None,
) -> list[Candidate]:
    """Ok candidates best first: the best under ``rule``, then the best of the rest, and so on.

    Ranking by repeated selection keeps ``rank(...)[0] == get_best(...)`` for every rule, and makes
    "Search-2" the candidate that would have been chosen had Search-1 not existed.
    """
    rest = [c for c in candidates if is_ok(c)]
    ranked: list[Candidate] = []
    while rest:
        best = get_best(rest, rule=rule, tolerance=tolerance, weights=weights)
        assert best is not None
        ranked.append(best)
        rest = [c for c in rest if c is not best]
    return ranked


def pareto_front(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Ok candidates that no other one dominates on (val accuracy up, val unfairness down, params down)."""
    pool = [c for c in candidates if is_ok(c)]
    points = {id(c): objectives(c) for c in pool}

    def dominates(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
        no_worse = a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2]
        return no_worse and (a[0] > b[0] or a[1] < b[1] or a[2] < b[2])

    front = [c for c in pool if not any(dominates(points[id(o)], points[id(c)]) for o in pool if o is not c)]
    return sorted(front, key=lambda c: (-points[id(c)][0], points[id(c)][1], points[id(c)][2], c.number))


def _accuracy(c: Candidate, rule: str) -> float:
    """The accuracy a rule compares: val balanced accuracy for ``balanced``, val accuracy otherwise."""
    if rule == "balanced":
        return _num(((c.metrics or {}).get("val") or {}).get("balanced_accuracy"), 0.0)
    return objectives(c)[0]


def _sort_key(c: Candidate, rule: str, weights: dict[str, float] | None) -> tuple[float, ...]:
    _, unfairness, params = objectives(c)
    acc = _accuracy(c, rule)
    if rule in ("fair", "balanced"):
        return (unfairness, params, -acc, c.number)
    if rule == "accuracy":
        return (-acc, unfairness, params, c.number)
    if rule == "unfairness":
        return (unfairness, -acc, params, c.number)
    if rule == "params":
        return (params, unfairness, -acc, c.number)
    return (-fitness(c, weights), c.number)


def _num(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default

"""The figures of bench/search_quality.py, from its run records: hypervolume, speed to random's level, selection.

A run record (one search) holds its designer, seed and every evaluated candidate in trial order with the
validation and test metrics the summary reads (see ``search_quality._slim``), so the figures at any
N' <= N come from the first N' evaluations: a designer's proposals never depend on N (each iteration's
random stream is seeded by (seed, iteration, attempt), and training is deterministic), so this is exactly
the search one would have run with ``--iters N'``.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
from _common import fmt


def hypervolume(points: np.ndarray) -> float:
    """Hypervolume of minimised points in the unit cube against the reference point (1, 1, 1)."""
    if points.size == 0:
        return 0.0
    points = np.clip(points, 0.0, 1.0)
    try:
        from optuna._hypervolume import compute_hypervolume
    except ImportError:  # private module: fall back to the exact grid method
        return hypervolume_grid(points)
    return float(compute_hypervolume(points, np.ones(points.shape[1])))


def hypervolume_grid(points: np.ndarray) -> float:
    """Exact hypervolume by the grid of the points' coordinates (O(n^4); fine for a few dozen points)."""
    if points.size == 0:
        return 0.0
    axes = [np.unique(np.append(points[:, d], 1.0)) for d in range(points.shape[1])]
    total = 0.0
    for i in range(len(axes[0]) - 1):
        for j in range(len(axes[1]) - 1):
            for k in range(len(axes[2]) - 1):
                lo = (axes[0][i], axes[1][j], axes[2][k])
                if np.any(np.all(points <= np.array(lo), axis=1)):
                    total += (axes[0][i + 1] - lo[0]) * (axes[1][j + 1] - lo[1]) * (axes[2][k + 1] - lo[2])
    return total


def as_candidate(record: dict[str, Any]):
    """A run's candidate record as a flnas Candidate for the selection functions."""
    from flnas.records import Candidate

    metrics = {"params": record["params"], "val": record["val"], "test": record["test"]}
    return Candidate(record["number"], record["iteration"], "bench", None, record["status"], metrics)


def point(candidate: dict[str, Any], max_params: float, accuracy: str) -> np.ndarray | None:
    """The minimised objective vector of an ok candidate record (never a degenerate one), None otherwise."""
    from flnas.records import is_ok, objectives

    c = as_candidate(candidate)
    if not is_ok(c):
        return None
    acc, unfairness, params = objectives(c, accuracy)
    return np.array([1.0 - acc, unfairness, params / max_params])


def hv_curve(candidates: list[dict[str, Any]], max_params: float, accuracy: str) -> list[float]:
    """Hypervolume after each evaluated candidate record, in the order given (trial order)."""
    pts: list[np.ndarray] = []
    curve = []
    for c in candidates:
        p = point(c, max_params, accuracy)
        if p is not None:
            pts.append(p)
        curve.append(hypervolume(np.array(pts)) if pts else 0.0)
    return curve


def evals_to_reach(curve: list[float], target: float) -> int | None:
    """1-based number of evaluations after which the hypervolume first reaches ``target`` (None: never)."""
    return next((i + 1 for i, hv in enumerate(curve) if hv >= target - 1e-12), None)


def median_reach(values: list[int | None]) -> float | None:
    """Median over repeats of the evaluations to reach random's final HV; a repeat that never did counts as
    more than any number, so the median is None (more than N) when half or more never reached it."""
    if not values:
        return None
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    n = len(ordered)
    mid = ordered[(n - 1) // 2 : n // 2 + 1]
    if any(v is None for v in mid):
        return None
    return float(statistics.fmean(mid))


def _mean(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def _pm(values: list[Any], digits: int = 3) -> str:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return "n/a"
    std = statistics.pstdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.fmean(vals):.{digits}f} +/- {std:.{digits}f}" if len(vals) > 1 else f"{vals[0]:.{digits}f}"


def complete_repeats(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only the seeds that every designer finished (a cut-off run leaves a partial repeat out)."""
    designers = {r["designer"] for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    done = [s for s in seeds if {r["designer"] for r in runs if r["seed"] == s} == designers]
    return [r for r in runs if r["seed"] in done]


HEADER = [
    "designer",
    "evaluated",
    "degenerate",
    "final HV",
    "HV vs random",
    "evals to random's final HV (median, reached)",
    "selected",
    "selected val bal. acc",
    "test acc",
    "test bal. acc",
    "test unfairness",
    "params",
]


def summary(runs: list[dict[str, Any]], n: int, args: Any) -> tuple[list[list[str]], list[str], dict[str, Any]]:
    """(table rows, header, figures) at N = n from the first n evaluations of every run."""
    from flnas.records import get_best

    designers = list(dict.fromkeys(r["designer"] for r in runs))
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["designer"], r["seed"]): r for r in runs}
    curves = {key: hv_curve(r["candidates"][:n], float(args.max_params), args.accuracy) for key, r in by.items()}

    def final(key: tuple[str, int]) -> float:
        curve = curves.get(key) or []
        return curve[-1] if curve else 0.0

    rows, figs = (
        [],
        {
            "hypervolume_final": {},
            "hypervolume_final_runs": {},
            "hv_minus_random": {},
            "evals_to_random_final": {},
            "evals_to_random_final_median": {},
            "selected_test": {},
            "degenerate": {},
            "evaluated": {},
            "hypervolume_curve": {},
        },
    )
    for name in designers:
        keys = [(name, s) for s in seeds if (name, s) in by]
        finals = [final(k) for k in keys]
        diffs = [final(k) - final(("random", k[1])) for k in keys]
        reach = [
            next((i + 1 for i, hv in enumerate(curves[k]) if hv >= final(("random", k[1])) - 1e-12), None) for k in keys
        ]
        selected = []
        for k in keys:
            best = get_best(
                [as_candidate(c) for c in by[k]["candidates"][:n]],
                rule=args.selection,
                tolerance=args.tolerance,
                accuracy=args.accuracy,
            )
            selected.append(
                {}
                if best is None
                else {
                    "val_balanced_accuracy": best.metrics["val"].get("balanced_accuracy"),
                    "test_accuracy": best.metrics["test"].get("accuracy"),
                    "test_balanced_accuracy": best.metrics["test"].get("balanced_accuracy"),
                    "test_unfairness": best.metrics["test"].get("unfairness"),
                    "params": best.metrics.get("params"),
                    "degenerate": best.status == "degenerate",
                }
            )
        evaluated = [len(by[k]["candidates"][:n]) for k in keys]
        degenerate = [sum(c["status"] == "degenerate" for c in by[k]["candidates"][:n]) for k in keys]
        median = median_reach(reach)
        hits = sum(1 for v in reach if v is not None)
        rows.append(
            [
                name,
                f"{sum(evaluated)}/{n * len(keys)}",
                str(sum(degenerate)),
                _pm(finals, 4),
                _pm(diffs, 4),
                f"{'>' + str(n) if median is None else f'{median:g}'} ({hits}/{len(keys)})",
                f"{sum(1 for s in selected if s)}/{len(selected)}",
                _pm([s.get("val_balanced_accuracy") for s in selected]),
                _pm([s.get("test_accuracy") for s in selected]),
                _pm([s.get("test_balanced_accuracy") for s in selected]),
                _pm([s.get("test_unfairness") for s in selected]),
                fmt(_mean([s.get("params") for s in selected]), 0),
            ]
        )
        figs["hypervolume_final"][name] = _mean(finals)
        figs["hypervolume_final_runs"][name] = finals
        figs["hv_minus_random"][name] = diffs
        figs["evals_to_random_final"][name] = reach
        figs["evals_to_random_final_median"][name] = median
        figs["degenerate"][name] = degenerate
        figs["evaluated"][name] = evaluated
        figs["hypervolume_curve"][name] = [
            _mean([curves[k][i] for k in keys if i < len(curves[k])])
            for i in range(max((len(curves[k]) for k in keys), default=0))
        ]
        figs["selected_test"][name] = {
            key: _mean([s.get(key) for s in selected])
            for key in ("val_balanced_accuracy", "test_accuracy", "test_balanced_accuracy", "test_unfairness", "params")
        } | {
            "selected": sum(1 for s in selected if s),
            "degenerate_selected": sum(1 for s in selected if s.get("degenerate")),
        }
    return rows, HEADER, figs

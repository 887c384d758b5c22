"""Time of the confidence intervals: the vectorised bootstrap against the direct loop over fairness_metrics.

For n synthetic test images (8 classes, ISIC-like groups: about 3% "old"), this times
``flnas.evaluate.bootstrap.bootstrap`` (per-resample confusion tables from one ``np.bincount`` per chunk,
metrics evaluated on all tables at once) and the direct computation (``fairness_metrics`` on each resample,
with the same indices), checks that the two agree on every value, and prints the 95% intervals and the
width of each group's interval, so a small group's wide interval is visible.

    .venv/bin/python bench/bootstrap.py                       # 1,000 images, 1,000 resamples
    .venv/bin/python bench/bootstrap.py --images 450 --resamples 5000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_json, fmt, load_average, machine_info, print_machine, spread, table, time_repeats  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000, help="test images (default 1000)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of the fast path (default 5)")
    p.add_argument("--quick", action="store_true", help="200 images, 100 resamples, 2 repeats (a smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.resamples, args.repeats = 200, 100, 2
    return args


def synthetic(n: int, seed: int = 0) -> dict[str, Any]:
    """Predictions 60% right, sex 45/45/10 (unknown), age young/middle/old/unknown 20/67/3/10."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 8, n)
    return {
        "y_true": y_true,
        "y_pred": np.where(rng.random(n) < 0.6, y_true, rng.integers(0, 8, n)),
        "sex": rng.choice(np.array(["male", "female", None], dtype=object), n, p=[0.45, 0.45, 0.1]),
        "age_group": rng.choice(np.array(["young", "middle", "old", None], dtype=object), n, p=[0.2, 0.67, 0.03, 0.1]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from flnas.evaluate.bootstrap import CI_METRICS, bootstrap, resample_indices
    from flnas.evaluate.fairness import fairness_metrics

    args = parse_args(argv)
    machine = machine_info()
    print_machine(machine)
    case = synthetic(args.images)

    def fast() -> Any:
        return bootstrap(**case, classes=8, resamples=args.resamples, seed=0)

    def direct() -> list[dict[str, Any]]:
        idx = np.concatenate(list(resample_indices(args.images, args.resamples, 0)))
        return [
            fairness_metrics(
                case["y_true"][i], case["y_pred"][i], classes=8, sex=case["sex"][i], age_group=case["age_group"][i]
            )
            for i in idx
        ]

    fast_s = spread(time_repeats(fast, warmup=1, repeats=args.repeats))
    direct_s = spread(time_repeats(direct, warmup=0, repeats=1))
    boot, reference = fast(), direct()
    worst = 0.0
    for key in CI_METRICS:
        ref = np.array([np.nan if r[key] is None else r[key] for r in reference])
        same_nan = np.array_equal(np.isnan(ref), np.isnan(boot.values[key]))
        if not same_nan:
            raise SystemExit(f"error: {key}: the fast path and the direct loop disagree on which values are undefined")
        worst = max(worst, float(np.nanmax(np.abs(ref - boot.values[key]), initial=0.0)))
    out = boot.to_json()
    print(
        f"\n{args.images} images, {args.resamples} resamples: fast {fmt(fast_s['median'], 4)} s (median of "
        f"{args.repeats}), direct loop {fmt(direct_s['median'], 3)} s; largest difference {worst:.1e}; "
        f"load {load_average()}"
    )
    rows = [
        [key, fmt(boot.point[key], 4), f"[{fmt(lo, 4)}, {fmt(hi, 4)}]"]
        for key in CI_METRICS
        for lo, hi in [out["ci"][key] or (None, None)]
    ]
    for group, interval in out["ci"]["groups"].items():
        lo, hi = interval or (None, None)
        count = boot.point["groups"][group]["count"]
        rows.append(
            [
                f"{group} ({count} images)",
                fmt(boot.point["groups"][group]["accuracy"], 4),
                f"[{fmt(lo, 4)}, {fmt(hi, 4)}] width {fmt(None if lo is None else hi - lo, 3)}",
            ]
        )
    print(table(rows, ["metric", "value", "95% interval"]))
    figures = {
        "images": args.images,
        "resamples": args.resamples,
        "fast_s": fast_s["median"],
        "direct_s": direct_s["median"],
        "max_abs_difference": worst,
        "group_interval_width": {g: (None if iv is None else iv[1] - iv[0]) for g, iv in out["ci"]["groups"].items()},
    }
    emit_json("bootstrap", figures, machine=machine)
    return figures


if __name__ == "__main__":
    main()

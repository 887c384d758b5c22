"""The report's figures as PNG bytes (matplotlib, no display needed): trade-off, search progress, groups.

Figures are built with ``matplotlib.figure.Figure`` directly (the Agg canvas), never with pyplot's global
state, so reports can be made in threads, tests and headless servers.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from flnas.data.attributes import all_groups, group_order
from flnas.records import Candidate, get_best, pareto_front
from flnas.report.table import FAHANA_DESIGNER, ReportTable, Row, metric_value
from flnas.study.setup import attributes_from_setup

CAPTIONS = {
    "accuracy_unfairness": "Accuracy against unfairness of every evaluated model on the validation split "
    "(marker area by # of params; line: the Pareto front of the searched models; stars: baselines).",
    "best_so_far": "The selected best so far (validation accuracy of record and unfairness) against the "
    "iteration, per designer.",
    "group_accuracy": "Per-group test accuracy of Search-1 against the best baseline (chosen on validation); "
    "error bars: 95% bootstrap intervals over the test images (wide for small groups).",
}


def _figure(width: float = 7.0, height: float = 4.5) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _val(candidate: Candidate, key: str) -> float | None:
    return metric_value(candidate.metrics, ("val", key), "val")


def accuracy_unfairness_png(table: ReportTable) -> bytes:
    """Scatter of val accuracy against val unfairness; marker area by params; the Pareto front of searches."""
    fig = _figure()
    ax = fig.add_subplot()
    acc_key, acc_label = _accuracy_of_record(table)
    searched = [
        c
        for c in table.search
        if c.status == "ok" and _val(c, acc_key) is not None and _val(c, "unfairness") is not None
    ]
    base = [row for row in table.baseline_rows if row.candidate.baseline]
    everything = searched + [row.candidate for row in base]
    if not everything:
        _empty(ax, "no evaluated model with defined accuracy and unfairness")
        return _png(fig)
    max_params = max(((c.metrics or {}).get("params") or 1) for c in everything)

    def size(c: Candidate) -> float:
        return 20 + 400 * math.sqrt(((c.metrics or {}).get("params") or 0) / max_params)

    designers = sorted({c.designer for c in searched})
    for designer in designers:
        group = [c for c in searched if c.designer == designer]
        ax.scatter(
            [_val(c, "unfairness") for c in group],
            [_val(c, acc_key) for c in group],
            s=[size(c) for c in group],
            alpha=0.6,
            label=designer,
        )
    front_of = [c for c in searched if c.designer != FAHANA_DESIGNER] or searched
    accuracy = "balanced" if acc_key == "balanced_accuracy" else "plain"
    front = [
        (_val(c, "unfairness"), _val(c, acc_key))
        for c in pareto_front(front_of, accuracy=accuracy, params=False)  # on accuracy and unfairness alone
    ]
    front = sorted(set(front), key=lambda p: (p[0], -p[1]))  # type: ignore[arg-type]
    if front:
        ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
    for row in base:
        c = row.candidate
        x, y = _val(c, "unfairness"), _val(c, acc_key)
        if x is None or y is None:
            continue
        ax.scatter([x], [y], s=size(c), marker="*", color="crimson", edgecolor="black", zorder=3)
        ax.annotate(row.label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    for row in table.searched_rows:
        x, y = _val(row.candidate, "unfairness"), _val(row.candidate, acc_key)
        if x is not None and y is not None:
            ax.annotate(row.label, (x, y), textcoords="offset points", xytext=(5, -10), fontsize=8)
    ax.set_xlabel("Unfairness (validation, lower is better)")
    ax.set_ylabel(f"{acc_label} (validation)")
    ax.set_title(f"{acc_label} vs unfairness (validation split)")
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def _accuracy_of_record(table: ReportTable) -> tuple[str, str]:
    """(metrics key, axis label) of the study's accuracy of record."""
    if table.selection.get("accuracy") == "balanced":
        return "balanced_accuracy", "Balanced accuracy"
    return "accuracy", "Accuracy"


def best_so_far_series(table: ReportTable) -> dict[str, list[tuple[int, float | None, float | None]]]:
    """Per designer: (iteration index, val accuracy of record, val unfairness) of the best so far."""
    series: dict[str, list[tuple[int, float | None, float | None]]] = {}
    acc_key, _label = _accuracy_of_record(table)
    for designer in sorted({c.designer for c in table.search}):
        history = sorted(
            (c for c in table.search if c.designer == designer), key=lambda c: (c.iteration, c.number)
        )
        points = []
        for i in range(1, len(history) + 1):
            best = get_best(history[:i], **table.selection)
            acc = _val(best, acc_key) if best else None
            unf = _val(best, "unfairness") if best else None
            points.append((i, acc, unf))
        series[designer] = points
    return series


def best_so_far_png(table: ReportTable) -> bytes:
    return _png(best_so_far_figure(table))


def best_so_far_figure(table: ReportTable) -> Any:
    """The best so far per designer: its validation accuracy of record (labelled as such) and unfairness."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(7.0, 5.5)
    ax_acc, ax_unf = fig.subplots(2, 1, sharex=True)
    series = best_so_far_series(table)
    if not series:
        _empty(ax_acc, "no search candidates in this study")
        return fig
    for designer, points in series.items():
        xs = [p[0] for p in points]
        ax_acc.plot(xs, [math.nan if p[1] is None else p[1] for p in points], marker="o", label=designer)
        ax_unf.plot(xs, [math.nan if p[2] is None else p[2] for p in points], marker="o", label=designer)
    _key, acc_label = _accuracy_of_record(table)
    ax_acc.set_ylabel(f"Val {acc_label[0].lower()}{acc_label[1:]} of best")
    ax_unf.set_ylabel("Val unfairness of best")
    ax_unf.set_xlabel("Iteration (per designer)")
    ax_unf.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations are whole numbers: no 1.25 ticks
    ax_acc.set_title("Best so far (study's selection rule)")
    ax_acc.legend(fontsize=8)
    return fig


def best_baseline(table: ReportTable) -> Row | None:
    """The baseline row chosen with the study's selection rule on validation (FaHaNa included)."""
    rows = table.baseline_rows
    best = get_best([row.candidate for row in rows], **table.selection)
    return next((row for row in rows if best is not None and row.candidate.number == best.number), None)


def group_accuracy_png(table: ReportTable) -> bytes:
    fig = _figure()
    ax = fig.add_subplot()
    search1 = table.searched_rows[0] if table.searched_rows else None
    rows = [row for row in (search1, best_baseline(table)) if row is not None]
    present = {
        name for row in rows for name in ((row.candidate.metrics or {}).get(table.split) or {}).get("groups") or {}
    }
    groups = [g for g in all_groups(attributes_from_setup(table.setup)) if g in present]  # the study's order
    groups += group_order(present - set(groups))
    if not rows or not groups:
        _empty(ax, "no per-group accuracy to show")
        return _png(fig)
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        data = ((row.candidate.metrics or {}).get(table.split) or {}).get("groups") or {}
        heights = [((data.get(g) or {}).get("accuracy")) for g in groups]
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(groups))]
        ci = (((row.candidate.metrics or {}).get(table.split) or {}).get("ci") or {}).get("groups") or {}
        errors = group_errors(heights, [ci.get(g) for g in groups])
        ax.bar(
            xs,
            [math.nan if h is None else h for h in heights],
            width=width,
            label=row.label,
            yerr=errors,
            capsize=3 if errors is not None else 0,
        )
    crowded = len(groups) > 8  # intersections: slanted, smaller labels
    ax.set_xticks(range(len(groups)), groups, rotation=45 if crowded else 0, fontsize=8 if crowded else None)
    ax.set_ylabel(f"Accuracy ({table.split})")
    ax.set_ylim(0, 1)
    ax.set_title(f"Per-group accuracy ({table.split} split)")
    ax.legend(fontsize=8)
    return _png(fig)


def group_errors(
    heights: list[float | None], intervals: list[list[float] | None]
) -> list[list[float]] | None:
    """Matplotlib ``yerr`` (below, above) from each bar's [lo, hi]; 0 where unknown; None if none is known."""
    if not any(iv is not None and h is not None for h, iv in zip(heights, intervals, strict=True)):
        return None
    below, above = [], []
    for h, iv in zip(heights, intervals, strict=True):
        known = h is not None and iv is not None
        below.append(max(0.0, h - iv[0]) if known else 0.0)  # type: ignore[operator,index]
        above.append(max(0.0, iv[1] - h) if known else 0.0)  # type: ignore[operator,index]
    return [below, above]


def render_plots(table: ReportTable, out_dir: Path | None = None) -> dict[str, bytes]:
    """All plots as PNG bytes by name; also written as ``<name>.png`` under ``out_dir`` when given."""
    pngs = {
        "accuracy_unfairness": accuracy_unfairness_png(table),
        "best_so_far": best_so_far_png(table),
        "group_accuracy": group_accuracy_png(table),
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, png in pngs.items():
            (out_dir / f"{name}.png").write_bytes(png)
    return pngs

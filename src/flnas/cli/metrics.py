"""`flnas metrics`: fairness metrics of any model's predictions (audit a predictions.csv on its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flnas.cli._common import console, fmt, print_json, wide_console
from flnas.cli._options import SEED_MAX

_CLASSES_FROM = {
    "given": "classes from --classes",
    "metrics.json": "classes: the dataset's list, from the metrics.json beside the predictions",
    "names seen": "classes: the sorted names seen in y_true/y_pred (pass --classes to fix the list)",
    "indices": "classes: indices 0..max seen in y_true/y_pred (pass --classes to fix the list)",
}


def register(app: typer.Typer) -> None:
    """Add ``flnas metrics`` to the root app."""

    @app.command("metrics")
    def metrics(
        predictions: Path = typer.Option(
            ...,
            "--predictions",
            "-p",
            help="CSV with columns y_true, y_pred (class names or indices), the sensitive columns (default sex "
            "and age_approx, empty where unknown), optionally image.",
        ),
        sensitive: str | None = typer.Option(
            None,
            "--sensitive",
            help="Comma-separated sensitive columns, e.g. skin_type,site: each value of a column is a group "
            "(default: the columns and bins a metrics.json next to the CSV records for a card dataset, else sex, "
            "and age_approx in the groups young <30, middle 30-65, old >65).",
        ),
        bins: list[str] = typer.Option(
            [],
            "--bins",
            help="COLUMN=EDGE,EDGE[:LABEL,...]: make a numeric --sensitive column into groups, e.g. age=30,65 "
            "gives <30, 30-65 (inclusive), >65; age=30,65:young,middle,old names them. Repeatable.",
        ),
        intersect: list[str] = typer.Option(
            [],
            "--intersect",
            help="Comma-separated attributes whose combinations are extra groups, e.g. sex,age gives the "
            "attribute sex/age with groups such as female/>65. Repeatable.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
        classes: str | None = typer.Option(
            None,
            "--classes",
            help="Comma-separated class list, e.g. MEL,NV,BCC,AK,BKL,DF,VASC,SCC "
            "(default: the dataset's list from a metrics.json beside FILE, as `flnas evaluate --out` writes; "
            "else the sorted names seen, or 0..max for indices).",
        ),
        ci: bool = typer.Option(
            False, "--ci", help="Add 95% percentile-bootstrap intervals over the images (seeded)."
        ),
        resamples: int | None = typer.Option(
            None, "--resamples", min=1, max=100_000, help="Bootstrap resamples with --ci (default 1000)."
        ),
        seed: int | None = typer.Option(
            None, "--seed", min=0, max=SEED_MAX, help="Bootstrap seed with --ci (default 0)."
        ),
    ) -> None:
        """Accuracy, Unfairness, EODD, EOPP1, EOPP2, per-group accuracy and per-pair values of predictions.

        The groups come from the sensitive columns: by default those a metrics.json beside the CSV records
        (flnas's own predictions of a card dataset), else sex and age_approx (ISIC's groups); with
        --sensitive any columns (each value a group, --bins for numeric ones), and --intersect adds
        combinations such as sex/age. With --ci, each headline metric and each group's accuracy gets a 95%
        percentile-bootstrap interval over the images (JSON: "ci" and "bootstrap").
        """
        from flnas.api.evaluation import audit

        result = audit(
            predictions, classes=classes, ci=ci, resamples=resamples, seed=seed, sensitive=sensitive, bins=bins,
            intersect=intersect,
        )
        if as_json:
            print_json(result)
        else:
            print_table(result, title=f"fairness metrics of {predictions}")


def print_table(result: dict[str, Any], *, title: str = "fairness metrics") -> None:
    """Show a :func:`flnas.evaluate.fairness.fairness_metrics` result as tables (undefined values: n/a)."""
    from rich.table import Table

    summary = Table(title=title, show_header=True)
    for name in ("records", "accuracy", "balanced acc.", "unfairness", "EODD", "EOPP1", "EOPP2"):
        summary.add_column(name, justify="right")
    summary.add_row(
        str(result.get("count", "")),
        fmt(result["accuracy"], percent=True),
        fmt(result["balanced_accuracy"], percent=True),
        fmt(result["unfairness"]),
        fmt(result["eodd"]),
        fmt(result["eopp1"]),
        fmt(result["eopp2"]),
    )
    ci = result.get("ci")
    if ci is not None:
        level = f"{100 * result['bootstrap']['level']:g}% CI"
        summary.add_row(
            level,
            *(fmt_interval(ci[k], percent=True) for k in ("accuracy", "balanced_accuracy")),
            *(fmt_interval(ci[k]) for k in ("unfairness", "eodd", "eopp1", "eopp2")),
        )
    wide_console(120).print(summary)

    groups = Table(title="per group", show_header=True)
    groups.add_column("group")
    groups.add_column("accuracy", justify="right")
    if ci is not None:
        groups.add_column(level, justify="right")
    groups.add_column("count", justify="right")
    for name, group in result["groups"].items():
        shown = [fmt(group["accuracy"], percent=True)]
        if ci is not None:
            shown.append(fmt_interval(ci["groups"].get(name), percent=True))
        groups.add_row(name, *shown, str(group["count"]))
    wide_console(120).print(groups)

    pairs = Table(title="per pair (mean over classes, one-vs-rest)", show_header=True)
    for name in ("pair", "EODD", "EOPP1", "EOPP2"):
        pairs.add_column(name, justify="left" if name == "pair" else "right")
    for name, pair in result["pairs"].items():
        pairs.add_row(name, fmt(pair["eodd"]), fmt(pair["eopp1"]), fmt(pair["eopp2"]))
    wide_console(120).print(pairs)

    if "classes" in result:
        note = _CLASSES_FROM.get(result.get("classes_from", "given"), "classes")
        console.print(f"{note}: {', '.join(result['classes'])}", highlight=False, soft_wrap=True)
    if ci is not None:
        console.print(bootstrap_note(result["bootstrap"]), highlight=False, soft_wrap=True)


def fmt_interval(interval: list[float] | None, *, percent: bool = False) -> str:
    """``[lo, hi]`` as a table shows it; ``n/a`` when no resample defines the value."""
    if interval is None:
        return "n/a"
    if percent:
        return f"[{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]"
    return f"[{fmt(interval[0])}, {fmt(interval[1])}]"


def bootstrap_note(info: dict[str, Any]) -> str:
    """One sentence: how the intervals were made and which resamples were skipped as undefined."""
    skipped = [f"{key} {count}" for key, count in info["undefined"].items() if key != "groups" and count] + [
        f"{group} {count}" for group, count in info["undefined"]["groups"].items() if count
    ]
    text = (
        f"intervals: {100 * info['level']:g}% percentile bootstrap over the {info['images']} images "
        f"({info['resamples']} resamples, seed {info['seed']})"
    )
    if skipped:
        text += "; resamples skipped where the value is undefined (e.g. a group absent): " + ", ".join(skipped)
    return text + "."

"""`flnas metrics`: fairness metrics of any model's predictions (audit a predictions.csv on its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flnas.cli._common import console, fmt, print_json, wide_console

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
            help="CSV with columns y_true, y_pred (class names or indices), sex, "
            "age_approx (empty where unknown), optionally image.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
        classes: str | None = typer.Option(
            None,
            "--classes",
            help="Comma-separated class list, e.g. MEL,NV,BCC,AK,BKL,DF,VASC,SCC "
            "(default: the dataset's list from a metrics.json beside FILE, as `flnas evaluate --out` writes; "
            "else the sorted names seen, or 0..max for indices).",
        ),
    ) -> None:
        """Accuracy, Unfairness, EODD, EOPP1, EOPP2, per-group accuracy and per-pair values of predictions."""
        from flnas.errors import FlnasError
        from flnas.evaluate.fairness import fairness_from_predictions, read_predictions

        class_list = None
        if classes is not None:
            class_list = [c.strip() for c in classes.split(",") if c.strip()]
            if not class_list or len(set(class_list)) != len(class_list):
                raise FlnasError(
                    f"--classes {classes!r}: give a comma-separated list of distinct class names"
                )
        df = read_predictions(predictions)
        from_sidecar = class_list is None and (class_list := _sidecar_classes(predictions)) is not None
        result = fairness_from_predictions(df, classes=class_list, source=str(predictions))
        if from_sidecar:
            result["classes_from"] = "metrics.json"
        if as_json:
            print_json(result)
        else:
            print_table(result, title=f"fairness metrics of {predictions}")


def _sidecar_classes(predictions: Path) -> list[str] | None:
    """The dataset's class list from the evaluator's metrics.json next to predictions.csv, when there is one.

    A test split may lack a class; the fairness averages must still run over the dataset's full list.
    """
    import json

    sidecar = Path(predictions).with_name("metrics.json")
    try:
        classes = json.loads(sidecar.read_text())["dataset"]["classes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes):
        return classes
    return None


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
    wide_console(120).print(summary)

    groups = Table(title="per group", show_header=True)
    groups.add_column("group")
    groups.add_column("accuracy", justify="right")
    groups.add_column("count", justify="right")
    for name, group in result["groups"].items():
        groups.add_row(name, fmt(group["accuracy"], percent=True), str(group["count"]))
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

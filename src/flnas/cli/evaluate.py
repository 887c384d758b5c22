"""`flnas evaluate SPEC.json`: train one architecture under the evaluator's settings, print every metric."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from flnas.api import defaults
from flnas.cli import _options as opt
from flnas.cli._common import console, err_console, fmt, print_data_warnings, print_json, wide_console
from flnas.cli.metrics import fmt_interval


def _split_table(metrics: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="accuracy and fairness", title_justify="left")
    for column in ("split", "loss", "accuracy", "balanced acc.", "unfairness", "EODD", "EOPP1", "EOPP2"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split in ("train", "val", "test"):
        part = metrics.get(split) or {}
        table.add_row(
            split,
            fmt(part.get("loss")),
            fmt(part.get("accuracy"), percent=True),
            fmt(part.get("balanced_accuracy"), percent=True),
            fmt(part.get("unfairness")),
            fmt(part.get("eodd")),
            fmt(part.get("eopp1")),
            fmt(part.get("eopp2")),
        )
    ci = (metrics.get("test") or {}).get("ci")
    if ci:  # the evaluator's bootstrap interval over the test images
        table.add_row(
            "test 95% CI",
            "",
            *(fmt_interval(ci.get(k), percent=True) for k in ("accuracy", "balanced_accuracy")),
            *(fmt_interval(ci.get(k)) for k in ("unfairness", "eodd", "eopp1", "eopp2")),
        )
    return table


def _group_table(metrics: dict[str, Any]) -> Any:
    """One row per group of every sensitive attribute (the data's, in order): val and test accuracy (count)."""
    from rich.table import Table

    from flnas.designers.optmetrics import metrics_attributes

    table = Table(title="per-group accuracy (count)", title_justify="left")
    for name in ("attribute", "group", "val", "test"):
        table.add_column(name, justify="left" if name in ("attribute", "group") else "right")
    ci = ((metrics.get("test") or {}).get("ci") or {}).get("groups")
    if ci:
        table.add_column("test 95% CI", justify="right")
    by_split = {split: (metrics.get(split) or {}).get("groups") or {} for split in ("val", "test")}
    for attribute, names in metrics_attributes(metrics).items():
        for k, group in enumerate(names):
            cells = []
            for split in ("val", "test"):
                info = by_split[split].get(group)
                cells.append(
                    f"{fmt(info.get('accuracy'), percent=True)} ({info.get('count', 0)})" if info else "n/a (0)"
                )
            if ci:
                cells.append(fmt_interval(ci.get(group), percent=True) if group in ci else "n/a")
            table.add_row(attribute if k == 0 else "", group, *cells, end_section=k == len(names) - 1)
    return table


def _hardware_table(metrics: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="model and hardware", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    params, flops = metrics.get("params"), metrics.get("flops")
    rows = [
        ("params", f"{params:,}" if params is not None else "n/a"),
        ("FLOPs", f"{flops:,}" if flops is not None else "n/a"),
        ("peak memory (MB)", fmt(metrics.get("peak_memory_mb"), 2)),
        ("latency, batch 2 (s)", fmt(metrics.get("latency_s"), 6)),
        ("throughput (images/s)", fmt(metrics.get("throughput"), 1)),
        ("ONNX latency, 1 thread (s)", fmt(metrics.get("onnx_latency_s"), 6)),
        ("epochs (best)", f"{metrics.get('epochs')} ({metrics.get('best_epoch')})"),
        ("training (s)", fmt(metrics.get("train_seconds"), 1)),
        ("device", str(metrics.get("device"))),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def register(app: typer.Typer) -> None:
    """Add `flnas evaluate` to the root app."""

    @app.command("evaluate")
    def evaluate(
        spec_path: Path = typer.Argument(
            ..., metavar="SPEC.json", help="Architecture JSON (see `flnas space schema`)."
        ),
        data: opt.Data = None,
        subset: opt.Subset = None,
        epochs: opt.Epochs = None,
        patience: opt.Patience = None,
        batch_size: opt.BatchSize = None,
        lr: opt.Lr = None,
        image_size: opt.ImageSize = defaults.EVALUATE["image_size"],
        seed: opt.Seed = defaults.EVALUATE["seed"],
        device: opt.Device = defaults.EVALUATE["device"],
        cache_dir: opt.CacheDir = None,
        choices_path: opt.ChoicesPath = None,
        out: Path | None = typer.Option(
            None, "--out", help="Keep spec, weights, ONNX, code, metrics, predictions."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
        no_hardware: opt.NoHardware = False,
        class_weighted: opt.ClassWeightedOff = None,
        max_train_seconds: opt.MaxTrainSeconds = None,
        precision: opt.Precision = None,
        channels_last: opt.ChannelsLast = None,
    ) -> None:
        """Train one architecture and print accuracy, fairness and hardware metrics (exit 1 if it fails)."""
        options = dict(locals())  # flnas.evaluate's keyword arguments, which are these options' names
        spec_path, json_out, out = options.pop("spec_path"), options.pop("json_out"), options.pop("out")
        options["choices"] = options.pop("choices_path")
        from flnas.api.evaluation import prepare_evaluation
        from flnas.designers.optmetrics import format_opt_metrics

        evaluation = prepare_evaluation(spec_path, progress=not json_out, **options)
        prepared = evaluation.data
        print_data_warnings(prepared.summary)
        result = evaluation.evaluator.evaluate(
            evaluation.spec, name=evaluation.name, out_dir=out, on_epoch=_progress(json_out)
        )
        metrics = result.metrics
        if json_out:
            print_json(metrics)
        else:
            label = " (synthetic data)" if prepared.synthetic else ""
            console.print(
                f"[bold]{escape(spec_path.name)}[/] on {escape(prepared.name)}{label}, "
                f"{metrics.get('device')}",
                highlight=False,
            )
            if result.ok:
                console.print(format_opt_metrics(metrics), markup=False, highlight=False, soft_wrap=True)
                wide_console(120).print(_split_table(metrics))
                wide_console(120).print(_group_table(metrics))
                wide_console(120).print(_hardware_table(metrics))
                if metrics.get("hardware", {}).get("error"):
                    err_console.print(
                        f"[yellow]warning:[/] {escape(metrics['hardware']['error'])}", highlight=False
                    )
                if out is not None:
                    console.print(f"artifacts written to {out}")
        if not result.ok:
            err_console.print(
                f"[bold red]failed:[/] {escape(str(result.reason))}", highlight=False, soft_wrap=True
            )
            sys.exit(1)  # not typer.Exit: main() runs click with standalone_mode=False, which drops its code


def _progress(quiet: bool) -> Any:
    """An on_epoch callback that prints one line per epoch on stderr (nothing with --json)."""
    if quiet:
        return None

    def on_epoch(epoch: int, logs: dict[str, Any]) -> None:
        err_console.print(
            f"epoch {epoch}/{logs['epochs']}: train loss {fmt(logs['train_loss'])}, "
            f"val loss {fmt(logs['val_loss'])}, val acc {fmt(logs['val_accuracy'], percent=True)} "
            f"({logs['seconds']:.1f} s)",
            highlight=False,
        )

    return on_epoch

"""`flnas data summary | prepare | card | synth`: look at, check and cache a dataset, print its card, or write a
synthetic one."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from flnas.cli._common import console, err_console, print_json
from flnas.cli._options import SEED_MAX

app = typer.Typer(
    help="Inspect, check and cache a dataset (a dataset card, or the ISIC 2019 layout), print its card, or write a "
    "synthetic one.",
    no_args_is_help=True,
)

DATA_HELP = ("A dataset card (YAML/JSON), a folder holding flnas.yaml, or a folder in the official ISIC 2019 layout "
             "(default: the embedded synthetic set).")
PROGRESS_HELP = "Show a progress bar (on stderr) while decoding."
SIZE_HELP = "Side in pixels the images are decoded to."
SUBSET_HELP = "Pick N records at random with balanced demographic groups (the paper uses 5000)."


def _load(data: Path | None, subset: int | None, seed: int, image_size: int, cache_dir: Path | None,
          skip_bad: bool, progress: bool):
    from flnas.data import default_synthetic_dir, prepare_data

    root = data if data is not None else default_synthetic_dir()
    return prepare_data(root, subset=subset, seed=seed, image_size=image_size, cache_dir=cache_dir,
                        skip_bad=skip_bad, progress=progress)


def _print_summary(summary: dict, attributes: dict[str, tuple[str, ...]]) -> None:
    """The summary as rich tables (the same numbers as --json); ``attributes`` groups the group counts."""
    title = f"{summary['name']}  ({summary['root']})"
    if summary["synthetic"]:
        title += "  [bold yellow]SYNTHETIC data[/]"
    console.print(title)
    splits = summary["splits"]
    classes = Table(title=f"{summary['records']} records, {len(summary['classes'])} classes")
    for col in ("class", "count", *splits):
        classes.add_column(col, justify="left" if col == "class" else "right")
    for c in summary["classes"]:
        classes.add_row(c, str(summary["class_counts"][c]), *(str(summary["split_class_counts"][s][c])
                                                               for s in splits))
    classes.add_row("total", str(summary["records"]), *(str(splits[s]) for s in splits), style="bold")
    console.print(classes)

    subset = summary.get("subset")
    groups = Table(title="sensitive groups")
    groups.add_column("attribute")
    groups.add_column("group")
    groups.add_column("count", justify="right")
    if subset:
        groups.add_column("available", justify="right")
    blank = [""] if subset else []
    for attribute, names in attributes.items():
        for k, g in enumerate(names):
            row = [attribute if k == 0 else "", g, str(summary["group_counts"][g])]
            groups.add_row(*row, *([str(subset["available_group_counts"][g])] if subset else []))
        groups.add_row("", f"unknown {attribute}", str(summary["missing"][attribute]), *blank, style="dim",
                       end_section=True)
    console.print(groups)
    if subset:
        console.print(f"subset: {subset['achieved']} of {subset['requested']} requested "
                      f"(from {subset['available']}, seed {subset['seed']}): {subset['note']}",
                      highlight=False)
    dropped = summary["dataset"].get("dropped_classes")
    if dropped:
        shown = ", ".join(f"{c} {n}" for c, n in dropped.items())
        console.print(f"dropped {sum(dropped.values())} records of classes the card does not list: {shown}",
                      highlight=False)
    skipped = summary["skipped"]
    if skipped["total"]:
        reasons = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in skipped["by_reason"].items())
        console.print(f"[yellow]skipped {skipped['total']} bad records[/]: {reasons}")
    for warning in summary.get("warnings") or ():
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    cache = summary["cache"]
    state = "hit (no decoding)" if cache["hit"] else f"{cache['status']}, decoded {cache['decoded']} images"
    console.print(f"image cache ({summary['image_size']} px): {state} in {cache['seconds']:.2f} s: "
                  f"{cache['path']}", highlight=False)


@app.command("summary")
def summary_command(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    subset: int | None = typer.Option(None, "--subset", min=1, help=SUBSET_HELP),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed of the subset and the split."),
    image_size: int = typer.Option(64, "--image-size", min=8, max=1024, help=SIZE_HELP),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Where the decoded-image cache lives."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out bad records and report them."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help=PROGRESS_HELP),
) -> None:
    """Counts per class, demographic group and split (through the decoded-image cache)."""
    prepared = _load(data, subset, seed, image_size, cache_dir, skip_bad, progress)
    if as_json:
        print_json(prepared.summary)
    else:
        _print_summary(prepared.summary, prepared.attributes)


@app.command("prepare")
def prepare_command(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    image_size: int = typer.Option(64, "--image-size", min=8, max=1024, help=SIZE_HELP),
    subset: int | None = typer.Option(None, "--subset", min=1, help=SUBSET_HELP),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed of the subset and the split."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Where the decoded-image cache lives."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out bad records and report them."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help=PROGRESS_HELP),
) -> None:
    """Check both CSVs and every listed image, and build the decoded-image cache."""
    prepared = _load(data, subset, seed, image_size, cache_dir, skip_bad, progress)
    summary = prepared.summary
    if as_json:
        print_json(summary)
        return
    _print_summary(summary, prepared.attributes)
    ok = summary["records"]
    console.print(f"[green]ok[/]: {ok} records checked and cached"
                  + (f", {summary['skipped']['total']} skipped" if summary["skipped"]["total"] else ""))


@app.command("card")
def card_command(
    data: Path | None = typer.Argument(
        None, metavar="[DATA]", help="A folder (ISIC 2019 layout, or holding flnas.yaml) or a card file; omitted: "
        "the embedded synthetic set."
    ),
) -> None:
    """Print the dataset card flnas reads DATA with (YAML), as a starting point for a card of your own."""
    from flnas.data import default_synthetic_dir
    from flnas.data.card import card_yaml, resolve_card

    card, root, card_file = resolve_card(data if data is not None else default_synthetic_dir())
    if card_file is None:
        header = (f"flnas dataset card: the built-in card of the official ISIC 2019 layout, as used for {root}.\n"
                  "Save it as flnas.yaml next to your data (paths are relative to the card) and edit it; "
                  "docs/data.md describes every key.")
    else:
        header = f"flnas dataset card read from {card_file}"
    console.print(card_yaml(card, header), end="", highlight=False, markup=False, soft_wrap=True)


@app.command("synth")
def synth_command(
    out: Path = typer.Option(..., "--out", help="Folder to write the synthetic dataset into."),
    n: int = typer.Option(600, "--n", min=1, help="Number of records (images)."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Random seed."),
    image_size: int = typer.Option(64, "--image-size", help="Side of the written JPEGs in pixels."),
    bias: float = typer.Option(
        0.5, "--bias", min=0, max=1, help="0..1: how much harder old and female (with --card: dark-skinned) records "
        "are made."
    ),
    card: bool = typer.Option(
        False, "--card", help="Write a layout only a dataset card describes (flnas.yaml, labels.csv, images/): "
        "other column names, a third attribute skin_tone (light, medium, dark) and the intersection sex/skin_tone."
    ),
) -> None:
    """Write a SYNTHETIC dataset (procedural lesion-like images) in the ISIC 2019 layout, or with --card, a card's."""
    from flnas.data.synthetic import write_synthetic

    path = write_synthetic(out, n=n, seed=seed, image_size=image_size, bias=bias, card=card)
    err_console.print(f"wrote {n} synthetic records ({image_size} px, bias {bias}) to {path}",
                      highlight=False)
    console.print(str(path), highlight=False)

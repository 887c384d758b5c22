"""Table I of the paper, rebuilt from one study: baselines against the top searched models, on the test split.

Rows: the timm baselines, "FaHaNa (RL search)" (the best ``fahana-rl`` candidate, when the study has
one), and Search-1..k: the top k candidates of the other designers, ranked on validation metrics with the
study's selection rule, reported on the test split. The first accuracy column is the study's accuracy of
record (balanced accuracy, or plain accuracy for the paper's preset and older studies); the other one is
shown unmarked. A searched value is marked (the paper's up/down arrows) where it is better than every
non-degenerate baseline's value in that column: higher for the accuracy of record, lower for everything
else; in a column measured on the test images (accuracy, balanced accuracy, Unfairness, EODD, EOPP1, EOPP2)
it must also pass the paired bootstrap of :mod:`flnas.report.significance` against each such baseline.
Those cells carry the evaluator's 95% bootstrap interval. A degenerate baseline (its validation predictions
are essentially one class, see :mod:`flnas.study.degenerate`) is shown, flagged "(degenerate)", and never
counts for a mark. With repeats in the study each cell is the mean +/- sample std over the original run and
its re-runs with other seeds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flnas.errors import StudyError
from flnas.evaluate.baselines import BASELINES, baseline_label
from flnas.records import Candidate, get_best, rank
from flnas.report.significance import RESAMPLED, PairedTests, study_seed

if TYPE_CHECKING:
    import optuna

FAHANA_DESIGNER = "fahana-rl"
FAHANA_LABEL = "FaHaNa (RL search)"
UP, DOWN = "↑", "↓"
DEGENERATE_FLAG = " (degenerate)"


@dataclass(frozen=True)
class Column:
    """One Table I column: where its value lives in the metrics JSON and which direction is better."""

    key: str
    header: str
    path: tuple[str, ...]  # e.g. ("test", "accuracy"); the split part is replaced by the reported split
    higher_better: bool
    style: str  # "percent" | "fraction" | "int" | "mb" | "seconds"
    marked: bool = True  # False: shown without up/down marks (the accuracy that is not of record)


PLAIN_COLUMN = Column("accuracy", "Accuracy", ("test", "accuracy"), True, "percent")
BALANCED_COLUMN = Column("balanced_accuracy", "Balanced accuracy", ("test", "balanced_accuracy"), True, "percent")
COLUMNS: tuple[Column, ...] = (
    PLAIN_COLUMN,
    BALANCED_COLUMN,
    Column("unfairness", "Unfairness", ("test", "unfairness"), False, "fraction"),
    Column("eodd", "EODD", ("test", "eodd"), False, "fraction"),
    Column("eopp1", "EOPP1", ("test", "eopp1"), False, "fraction"),
    Column("eopp2", "EOPP2", ("test", "eopp2"), False, "fraction"),
    Column("params", "# of params", ("params",), False, "int"),
    Column("peak_memory_mb", "Mem (MB)", ("peak_memory_mb",), False, "mb"),
    Column("latency_s", "Latency (s)", ("latency_s",), False, "seconds"),
    Column("onnx_latency_s", "ONNX Runtime latency (s, 1 thread)", ("onnx_latency_s",), False, "seconds"),
)


def columns_for(accuracy: str) -> list[Column]:
    """Table I's columns for an accuracy setting: the accuracy of record first and marked, the other not."""
    from dataclasses import replace

    rest = [col for col in COLUMNS if col.key not in ("accuracy", "balanced_accuracy")]
    if accuracy == "balanced":
        return [BALANCED_COLUMN, replace(PLAIN_COLUMN, marked=False), *rest]
    return [PLAIN_COLUMN, replace(BALANCED_COLUMN, marked=False), *rest]


@dataclass
class Stat:
    """A cell: the mean over n runs and the sample std (None for one run or an undefined value)."""

    mean: float | None
    std: float | None = None
    n: int = 0
    interval: list[float] | None = None  # [lo, hi]: the original run's 95% bootstrap interval over images


@dataclass
class Row:
    label: str  # "ResNet-18", "FaHaNa (RL search)", "Search-1"
    group: str  # "Baseline" | "FL-NAS"
    candidate: Candidate
    runs: list[dict[str, Any]]  # metrics of the original run, then of each ok repeat
    values: dict[str, Stat] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)  # column key -> UP | DOWN

    @property
    def searched(self) -> bool:
        return self.group == "FL-NAS"

    @property
    def degenerate(self) -> bool:
        """Its validation predictions are essentially one class: flagged, and never a reference for marks."""
        return self.candidate.status == "degenerate"


@dataclass
class ReportTable:
    """Everything the renderers and plots need, read once from the study."""

    study_name: str
    setup: dict[str, Any]
    selection: dict[str, Any]  # the rule that chose Search-k, FaHaNa's row and the best baseline
    split: str
    columns: list[Column]
    headers: dict[str, str]  # column key -> header text (the latency header names the device)
    rows: list[Row]
    search: list[Candidate]  # every search candidate (all designers, all statuses), oldest first
    baselines: list[Candidate]  # every baseline candidate
    notes: list[str] = field(default_factory=list)
    repeats: int = 0  # the largest number of runs behind a cell, minus one
    tests: PairedTests = field(default_factory=PairedTests)  # the paired tests behind the marks

    @property
    def baseline_rows(self) -> list[Row]:
        return [row for row in self.rows if not row.searched]

    @property
    def searched_rows(self) -> list[Row]:
        return [row for row in self.rows if row.searched]


# --- selection ---------------------------------------------------------------------------------------------


def selection_options(
    search: dict[str, Any],
    rule: str | None = None,
    tolerance: float | None = None,
    *,
    accuracy: str = "plain",
) -> dict[str, Any]:
    """The selection rule: explicit arguments, else the one the last search ran with, else the default.

    ``search`` is the study's search settings (``flnas.study.storage.get_search_settings``); ``accuracy``
    is the study's accuracy of record (``flnas.study.setup.accuracy_from_setup``).
    """
    from flnas.records import DEFAULT_RULE, DEFAULT_TOLERANCE, check_rule

    if tolerance is None:
        tolerance = search.get("tolerance", DEFAULT_TOLERANCE)
    options = {
        "rule": rule or search.get("selection") or DEFAULT_RULE,
        "tolerance": float(tolerance),
        "accuracy": accuracy,
    }
    check_rule(options["rule"], options["tolerance"], accuracy)
    return options


# --- building ----------------------------------------------------------------------------------------------


def metric_value(metrics: dict[str, Any] | None, path: tuple[str, ...], split: str = "test") -> float | None:
    """Follow ``path`` in a metrics JSON (its split part set to ``split``); None if absent/not finite."""
    node: Any = metrics or {}
    for i, part in enumerate(path):
        if i == 0 and part in ("test", "val") and len(path) > 1:
            part = split
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        return None
    return float(node)


def _stat(values: list[float | None]) -> Stat:
    defined = [v for v in values if v is not None]
    if not defined:
        return Stat(None, None, 0)
    std = statistics.stdev(defined) if len(defined) > 1 else None
    return Stat(statistics.fmean(defined), std, len(defined))


def build_table(
    study: optuna.Study,
    *,
    top: int = 3,
    split: str = "test",
    rule: str | None = None,
    tolerance: float | None = None,
) -> ReportTable:
    """Read the study and assemble Table I (no training happens here)."""
    from flnas.study.history import load_candidates, load_trials
    from flnas.study.setup import accuracy_from_setup
    from flnas.study.storage import get_search_settings, get_setup

    setup = get_setup(study) or {}
    accuracy = accuracy_from_setup(setup)
    selection = selection_options(get_search_settings(study), rule, tolerance, accuracy=accuracy)
    columns = columns_for(accuracy)
    search = load_candidates(study, "search")
    baselines = load_candidates(study, "baseline")
    repeats: dict[int, list[dict[str, Any]]] = {}
    for candidate, attrs in load_trials(study, "repeat"):
        if candidate.status == "ok" and candidate.metrics and attrs.get("repeat_of") is not None:
            repeats.setdefault(int(attrs["repeat_of"]), []).append(candidate.metrics)

    rows: list[Row] = []
    seen: set[str] = set()
    for candidate in reversed(baselines):  # the latest trained run of each baseline, in Table I's order
        if candidate.status in ("ok", "degenerate") and candidate.baseline not in seen:
            seen.add(candidate.baseline or "")
            flag = DEGENERATE_FLAG if candidate.status == "degenerate" else ""
            rows.append(Row(baseline_label(candidate.baseline or "?") + flag, "Baseline", candidate, []))
    order = {name: i for i, name in enumerate(BASELINES)}
    rows.sort(key=lambda row: order.get(row.candidate.baseline or "", len(order)))
    fahana = get_best([c for c in search if c.designer == FAHANA_DESIGNER], **selection)
    if fahana is not None:
        rows.append(Row(FAHANA_LABEL, "Baseline", fahana, []))
    searched = rank([c for c in search if c.designer != FAHANA_DESIGNER], **selection)[:top]
    rows += [Row(f"Search-{i}", "FL-NAS", c, []) for i, c in enumerate(searched, start=1)]
    if not rows:
        raise StudyError(
            f"study {study.study_name!r} has no successful baseline or search candidate to report"
        )

    tests = PairedTests(split=split, seed=study_seed(setup))
    for row in rows:
        row.runs = [row.candidate.metrics or {}] + repeats.get(row.candidate.number, [])
        row.values = {col.key: _stat([metric_value(m, col.path, split) for m in row.runs]) for col in COLUMNS}
        for key in RESAMPLED & row.values.keys():
            row.values[key].interval = tests.interval(row.candidate, key)
    _mark(rows, columns, tests)
    table = ReportTable(
        study_name=study.study_name,
        setup=setup,
        selection=selection,
        split=split,
        columns=columns,
        headers=_headers(rows),
        rows=rows,
        search=search,
        baselines=baselines,
        repeats=max(len(row.runs) for row in rows) - 1,
        tests=tests,
    )
    return table


def _mark(rows: list[Row], columns: list[Column], tests: PairedTests) -> None:
    """Mark a searched cell that beats every non-degenerate baseline (FaHaNa included) in a marked column."""
    base = [row for row in rows if not row.searched and not row.degenerate]
    for col in (c for c in columns if c.marked):
        others = [row for row in base if row.values[col.key].mean is not None]
        if not others:
            continue
        for row in rows:
            if row.searched and all(beats(row, other, col, tests) for other in others):
                row.marks[col.key] = UP if col.higher_better else DOWN


def beats(row: Row, other: Row, col: Column, tests: PairedTests) -> bool:
    """Whether ``row`` is better than ``other`` in ``col`` (the rule behind a mark).

    Its value (the mean over runs) must be better; in a column measured on the test images, the paired
    bootstrap of the two original runs' predictions must also put the difference wholly on the better side
    of 0 (no stored predictions: no test, no mark).
    """
    a, b = row.values[col.key].mean, other.values[col.key].mean
    if a is None or b is None or not (a > b if col.higher_better else a < b):
        return False
    if col.key not in RESAMPLED:
        return True
    labels = (row.label, other.label)
    return tests.better(row.candidate, other.candidate, col.key, higher_better=col.higher_better, labels=labels)


def _headers(rows: list[Row]) -> dict[str, str]:
    headers = {col.key: col.header for col in COLUMNS}
    devices = sorted({str(run.get("device")) for row in rows for run in row.runs if run.get("device")})
    if devices:
        headers["latency_s"] = f"Latency (s, {', '.join(devices)})"
    return headers


def row_source(row: Row) -> str:
    """Where a row comes from, for the notes under the table."""
    c = row.candidate
    if c.baseline:
        return f"{row.label}: baseline {c.baseline} (trial {c.number})"
    return f"{row.label}: designer {c.designer}, iteration {c.iteration} (trial {c.number})"


# --- notes -------------------------------------------------------------------------------------------------


def chance_notes(table: ReportTable) -> list[str]:
    """A warning for each row whose balanced accuracy is at chance (1 / classes) or below.

    On imbalanced data (ISIC: NV is about half) a network that answers the majority class for every image
    has a high accuracy and a zero EODD/EOPP, so it can look good in every column but one.
    """
    classes = len(table.setup.get("classes") or [])
    if classes < 2:
        return []
    chance = 1.0 / classes
    weighted = bool((table.setup.get("train") or {}).get("class_weighted_loss"))
    hint = "" if weighted else "; `--class-weighted` trains against that"
    out = []
    for row in table.rows:
        value = row.values.get("balanced_accuracy")
        if value is not None and value.mean is not None and value.mean <= chance + 1e-6:
            out.append(
                f"{row.label}: balanced accuracy {100 * value.mean:.2f}% is at chance (1/{classes}): this model "
                f"probably predicts one class for every image, so its accuracy and zero EODD/EOPP mean little{hint}."
            )
    return out


def run_notes(
    table: ReportTable, *, data: Any = None, split_sizes: dict[str, int] | None = None
) -> list[str]:
    """What the numbers are: data, split sizes, evaluator settings, selection; all from this run."""
    setup = table.setup
    dataset = str(setup.get("dataset") or (getattr(data, "name", None)) or "unknown dataset")
    synthetic = (
        bool(getattr(data, "synthetic", False)) or setup.get("data") is None or "synthetic" in dataset.lower()
    )
    kind = (
        "SYNTHETIC data (not ISIC 2019: the numbers say nothing about skin lesions)"
        if synthetic
        else "real data"
    )
    where = setup.get("data") or "the embedded synthetic set"
    from flnas.study.setup import attributes_from_setup

    groups = "; ".join(f"{a} ({', '.join(g)})" for a, g in attributes_from_setup(setup).items())
    notes = [
        f"Data: {kind}; {dataset} from {where}, subset {setup.get('subset') or 'all'}, "
        f"split seed {setup.get('seed', 'n/a')}, image size {setup.get('image_size', 'n/a')}.",
        f"Sensitive attributes (groups): {groups or 'none'}; Unfairness is over all their groups, EODD/EOPP "
        "over the pairs of groups within each attribute.",
    ]
    if split_sizes is None and data is not None:
        split_sizes = {name: len(split) for name, split in data.splits.items()}
    if split_sizes:
        notes.append("Split sizes: " + ", ".join(f"{name} {n}" for name, n in split_sizes.items()) + ".")
    else:
        notes.append(
            "Split sizes: not available (the study's data could not be loaded when this report was made)."
        )
    train = setup.get("train") or {}
    keys = (
        "epochs",
        "patience",
        "batch_size",
        "optimizer",
        "lr",
        "weight_decay",
        "augment",
        "label_smoothing",
        "class_weighted_loss",
        "precision",
        "channels_last",
        "max_train_seconds",
        "seed",
        "device",
        "latency_batch_size",
    )
    settings = ", ".join(f"{k}={train[k]}" for k in keys if train.get(k) is not None)
    notes.append(
        f"Evaluator (the same for every row): {settings or 'not recorded'}; env {setup.get('env', 'n/a')}."
    )
    rule = table.selection
    notes.append(
        f"Rows are reported on the {table.split} split; Search-k and the FaHaNa row were chosen on "
        f"validation metrics ({', '.join(f'{k} {v}' for k, v in rule.items())})."
    )
    record = "balanced accuracy" if rule.get("accuracy") == "balanced" else "plain accuracy"
    notes.append(
        f"Accuracy of record: {record} (the study's --accuracy; it is the first accuracy column, the one "
        "the search optimised and selection compared); the other accuracy column is shown unmarked."
    )
    tests = table.tests
    notes.append(
        f"{UP}/{DOWN}: a searched model better than every non-degenerate baseline in that column (higher "
        "accuracy of record, lower everything else); in the accuracy, Unfairness, EODD, EOPP1 and EOPP2 "
        f"columns only where the paired bootstrap ({tests.resamples:,} resamples of the {table.split} images, "
        f"seed {tests.seed}) puts the {100 * tests.level:g}% interval of the difference to each such baseline "
        "wholly on the better side of 0; n/a: undefined for this run, never 0."
    )
    shown = [row.values[key] for row in table.rows for key in RESAMPLED if key in row.values]
    if any(stat.interval is not None for stat in shown):
        notes.append(
            f"[lo, hi]: the {100 * tests.level:g}% percentile-bootstrap interval over the {table.split} images "
            "of the original run (resampled values left undefined, e.g. by an absent group, are skipped)."
        )
    if table.repeats:
        notes.append(
            f"Cells are mean ± sample std over up to {table.repeats + 1} runs (the original seed and "
            "re-runs with seed+1, ...); marks compare the means."
        )
    notes.append(
        f"Every number comes from this run (study {table.study_name!r}); nothing is copied from the paper."
    )
    notes += chance_notes(table)
    notes += [
        f"{row.label}: {row.candidate.reason or 'degenerate'}; it is shown but sets no mark."
        for row in table.rows
        if row.degenerate
    ]
    percent = frozenset(col.key for col in table.columns if col.style == "percent")
    notes += tests.notes(table.headers, percent)
    notes += [row_source(row) for row in table.rows]
    table.notes = notes
    return notes

"""Fairness metrics of FL-NAS as *disaggregated metrics* (in the spirit of fairlearn's ``MetricFrame``).

Everything is computed from one table: a confusion matrix per demographic group (male, female, young,
middle, old) plus the overall one. From it come overall and per-group accuracy, the paper's Unfairness
score, and the per-pair equal-opportunity / equalised-odds gaps (EOPP1, EOPP2, EODD) exactly as defined in
``shared/DESIGN.md`` and ``docs/metrics.md``:

- Unfairness = mean over non-empty groups of ``|Acc_g - Acc_overall|``.
- For a pair of groups of one attribute and each class (one-vs-rest): TPR, FPR, TNR in each group. A rate
  whose denominator is 0 in either group is undefined for that pair and class and is skipped, never 0.
- EOPP1 = mean |dTPR|, EOPP2 = mean |dTNR|, EODD = mean max(|dTPR|, |dFPR|) over the classes that define
  them; the headline value is the mean over the pairs that define it, ``None`` where none does.

Classes are always passed explicitly (the dataset's label list), so a split that lacks a class still uses
the same denominators as every other split.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flnas.data.groups import AGE_GROUPS, ATTRIBUTES, GROUPS, SEX_GROUPS, age_group, sex_group
from flnas.errors import FlnasError

#: the unordered pairs of groups EODD/EOPP are computed for, in report order ("male|female", ...)
PAIRS: tuple[tuple[str, str], ...] = tuple(
    (groups[i], groups[j])
    for groups in ATTRIBUTES.values()
    for i in range(len(groups))
    for j in range(i + 1, len(groups))
)
PAIR_METRICS = ("eodd", "eopp1", "eopp2")


def pair_name(a: str, b: str) -> str:
    """The key of a pair in ``pairs``: ``"male|female"``."""
    return f"{a}|{b}"


# --------------------------------------------------------------------------------------------------
# the per-group confusion table


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _group_masks(values: Any, allowed: Sequence[str], what: str, n: int) -> dict[str, np.ndarray]:
    """One boolean mask per group of an attribute; missing values (None/NaN/"") are in no group."""
    if values is None:
        return {g: np.zeros(n, dtype=bool) for g in allowed}
    arr = np.asarray(values, dtype=object).reshape(-1)
    if len(arr) != n:
        raise ValueError(f"{what} has {len(arr)} values but y_true has {n}")
    for i, value in enumerate(arr):
        if not _is_missing(value) and value not in allowed:
            raise ValueError(
                f"{what}[{i}] = {value!r} is not one of {', '.join(allowed)} (or None for unknown)"
            )
    return {g: arr == g for g in allowed}


def confusion_table(
    y_true: Any, y_pred: Any, *, num_classes: int, sex: Any = None, age_group: Any = None
) -> dict[str, np.ndarray]:
    """Confusion matrices ``[true, pred]`` (int64, ``num_classes`` square) for ``overall`` and each group.

    ``sex`` holds ``male``/``female``/None and ``age_group`` ``young``/``middle``/``old``/None per record;
    a record with an unknown value is counted only in ``overall``.
    """
    yt = np.asarray(y_true, dtype=np.int64).reshape(-1)
    yp = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if len(yt) != len(yp):
        raise ValueError(f"y_true has {len(yt)} values but y_pred has {len(yp)}")
    for name, arr in (("y_true", yt), ("y_pred", yp)):
        bad = np.flatnonzero((arr < 0) | (arr >= num_classes))
        if len(bad):
            raise ValueError(f"{name}[{bad[0]}] = {arr[bad[0]]} is not a class index in 0..{num_classes - 1}")
    masks = {
        **_group_masks(sex, SEX_GROUPS, "sex", len(yt)),
        **_group_masks(age_group, AGE_GROUPS, "age_group", len(yt)),
    }
    flat = yt * num_classes + yp

    def matrix(mask: np.ndarray | None) -> np.ndarray:
        cells = flat if mask is None else flat[mask]
        return np.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes, num_classes)

    table = {"overall": matrix(None)}
    table.update({g: matrix(masks[g]) for g in GROUPS})
    return table


@dataclass(frozen=True)
class Rates:
    """One-vs-rest rates per class of one confusion matrix; NaN where the denominator is 0."""

    tpr: np.ndarray
    fpr: np.ndarray
    tnr: np.ndarray


def one_vs_rest_rates(cm: np.ndarray) -> Rates:
    """TPR = TP/(TP+FN), FPR = FP/(FP+TN), TNR = TN/(TN+FP) for each class treated one-vs-rest."""
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.sum()
    tp = np.diag(cm)
    fn = cm.sum(axis=1) - tp
    fp = cm.sum(axis=0) - tp
    tn = n - tp - fn - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = tp + fn
        neg = fp + tn
        tpr = np.where(pos > 0, tp / pos, np.nan)
        fpr = np.where(neg > 0, fp / neg, np.nan)
        tnr = np.where(neg > 0, tn / neg, np.nan)
    return Rates(tpr=tpr, fpr=fpr, tnr=tnr)


def _mean_defined(values: np.ndarray) -> float | None:
    """Mean of the finite values; ``None`` when there are none (undefined, never 0)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def pair_metrics(cm_a: np.ndarray, cm_b: np.ndarray) -> dict[str, float | None]:
    """EODD, EOPP1, EOPP2 between two groups' confusion matrices (classes with undefined rates skipped)."""
    ra, rb = one_vs_rest_rates(cm_a), one_vs_rest_rates(cm_b)
    d_tpr = np.abs(ra.tpr - rb.tpr)  # NaN when undefined in either group
    d_fpr = np.abs(ra.fpr - rb.fpr)
    d_tnr = np.abs(ra.tnr - rb.tnr)
    both = np.isfinite(d_tpr) & np.isfinite(d_fpr)
    eodd = np.where(both, np.maximum(d_tpr, d_fpr), np.nan)
    return {"eodd": _mean_defined(eodd), "eopp1": _mean_defined(d_tpr), "eopp2": _mean_defined(d_tnr)}


def _accuracy(cm: np.ndarray) -> float | None:
    total = int(cm.sum())
    return float(np.trace(cm) / total) if total else None


def _balanced_accuracy(cm: np.ndarray) -> float | None:
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return None
    return float((np.diag(cm)[present] / support[present]).mean())


def metrics_from_table(table: dict[str, np.ndarray]) -> dict[str, Any]:
    """All fairness metrics from a :func:`confusion_table` (see the module docstring for the definitions)."""
    overall = table["overall"]
    accuracy = _accuracy(overall)
    groups = {
        g: {"accuracy": _accuracy(table[g]), "count": int(table[g].sum())}
        for g in GROUPS
        if table[g].sum() > 0
    }
    unfairness = None
    if groups and accuracy is not None:
        unfairness = float(np.mean([abs(v["accuracy"] - accuracy) for v in groups.values()]))
    pairs: dict[str, dict[str, float | None]] = {}
    for a, b in PAIRS:
        if a in groups and b in groups:
            pairs[pair_name(a, b)] = pair_metrics(table[a], table[b])
        else:  # an empty group defines no rate
            pairs[pair_name(a, b)] = dict.fromkeys(PAIR_METRICS)
    summary: dict[str, float | None] = {}
    for metric in PAIR_METRICS:
        defined = [p[metric] for p in pairs.values() if p[metric] is not None]
        summary[metric] = float(np.mean(defined)) if defined else None
    return {
        "accuracy": accuracy,
        "balanced_accuracy": _balanced_accuracy(overall),
        "unfairness": unfairness,
        "eodd": summary["eodd"],
        "eopp1": summary["eopp1"],
        "eopp2": summary["eopp2"],
        "count": int(overall.sum()),
        "groups": groups,
        "pairs": pairs,
    }


def fairness_metrics(
    y_true: Any, y_pred: Any, *, classes: Sequence[str] | int, sex: Any = None, age_group: Any = None
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, Unfairness, EODD, EOPP1, EOPP2, per-group and per-pair values.

    ``y_true``/``y_pred`` are int class indices into ``classes`` (the dataset's label list, or its length);
    ``sex`` is male/female/None and ``age_group`` young/middle/old/None per record (None = unknown: the
    record counts only in the overall figures). Undefined values are ``None``. Returns keys accuracy,
    balanced_accuracy, unfairness, eodd, eopp1, eopp2, count, groups {name: {accuracy, count}} (non-empty
    groups, in the order male, female, young, middle, old) and pairs {"male|female": {eodd, eopp1, eopp2},
    "young|middle", "young|old", "middle|old"} (always all four; values None where undefined).
    """
    num_classes = classes if isinstance(classes, int) else len(classes)
    if num_classes < 1:
        raise ValueError("classes must name at least one class")
    table = confusion_table(y_true, y_pred, num_classes=num_classes, sex=sex, age_group=age_group)
    return metrics_from_table(table)


# --------------------------------------------------------------------------------------------------
# predictions tables (predictions.csv: y_true, y_pred, sex, age_approx)

REQUIRED_COLUMNS = ("y_true", "y_pred", "sex", "age_approx")


@dataclass
class Predictions:
    """A predictions table turned into what :func:`fairness_metrics` takes."""

    y_true: np.ndarray
    y_pred: np.ndarray
    sex: np.ndarray
    age_group: np.ndarray
    classes: list[str]
    classes_from: str  # "given" | "names seen" | "indices"


#: the most classes a predictions table may have (given, inferred from names, or 0..max for indices). The
#: per-group confusion matrices grow with its square (6 x 1000^2 int64 = 48 MB at the limit), so a label such
#: as 99999999999 must be refused, not turned into a class list that size.
MAX_CLASSES = 1000

_INDEX = re.compile(r"[+-]?\d+")


def _label_kind(text: str) -> str:
    """ "index" (a whole number), "number" (any other number: 1.5, nan, inf, 1e3) or "name"."""
    if _INDEX.fullmatch(text):
        return "index"
    try:
        float(text)
    except ValueError:
        return "name"
    return "number"


def _shown(label: str, limit: int = 24) -> str:
    """A label for a message: quoted, and cut short when it is long."""
    return repr(label) if len(label) <= limit else repr(label[:limit]) + f"... ({len(label)} characters)"


def _listed(names: Sequence[str], limit: int = 12) -> str:
    """``A, B, C``; a long list is cut: ``0, 1, ..., 9, ... (1000 in all)``."""
    return ", ".join(names) if len(names) <= limit else ", ".join(names[:10]) + f", ... ({len(names)} in all)"


def _label_text(value: Any) -> str:
    """A label as text; a whole float from a numeric DataFrame column (2.0) is the index "2"."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _refuse_numbers(source: str, labels: dict[str, list[str]], known: Sequence[str] = ()) -> None:
    """Labels are class names or whole-number indices; 1.5, nan or inf is neither (unless --classes names it)."""
    allowed = set(known)
    for col, values in labels.items():
        for i, v in enumerate(values):
            if v not in allowed and _label_kind(v) == "number":
                raise FlnasError(
                    f"{source} line {i + 2}: column {col} has {_shown(v)}, a number that is not a class index "
                    "(labels are class names or whole-number indices 0, 1, 2, ...)"
                )


def _indices(source: str, labels: dict[str, list[str]], limit: int, what: str) -> dict[str, np.ndarray]:
    """The labels as int64 indices, each checked against ``limit`` before any array is sized by it."""
    idx = {}
    for col, values in labels.items():
        ints = [int(v) for v in values]  # Python ints: 99999999999999999999 does not overflow here
        for i, k in enumerate(ints):
            if not 0 <= k < limit:
                shown = _shown(str(k), 20).strip("'")
                raise FlnasError(f"{source} line {i + 2}: column {col} has class index {shown}, {what}")
        idx[col] = np.array(ints, dtype=np.int64)
    return idx


def _class_indices(
    source: str, labels: dict[str, list[str]], classes: Sequence[str] | None
) -> tuple[dict[str, np.ndarray], list[str], str]:
    """(indices per column, class list, where it came from) under the rules of :func:`parse_predictions`."""
    if classes is not None and len(classes) > MAX_CLASSES:
        raise FlnasError(f"--classes names {len(classes):,} classes; at most {MAX_CLASSES:,} are supported")
    kinds = {col: [_label_kind(v) for v in values] for col, values in labels.items()}
    if all(k == "index" for col in kinds.values() for k in col):
        if classes is not None:
            names = list(classes)
            return _indices(source, labels, len(names), f"outside 0..{len(names) - 1}"), names, "given"
        idx = _indices(source, labels, MAX_CLASSES, f"above {MAX_CLASSES - 1}, the largest class index "
                       "supported (pass --classes with the real class list, or check the column)")
        top = max(int(idx["y_true"].max()), int(idx["y_pred"].max()))
        return idx, [str(i) for i in range(top + 1)], "indices"

    _refuse_numbers(source, labels, classes or ())
    if classes is not None:
        names, classes_from = list(classes), "given"
    else:
        for col, col_kinds in kinds.items():
            if "index" in col_kinds:
                i = col_kinds.index("index")
                raise FlnasError(
                    f"{source} line {i + 2}: column {col} has the class index {_shown(labels[col][i])} where other "
                    "labels are class names (use one kind, or pass --classes)"
                )
        seen = set(labels["y_true"]) | set(labels["y_pred"])
        if len(seen) > MAX_CLASSES:
            raise FlnasError(
                f"{source}: y_true and y_pred hold {len(seen):,} different class names, more than the "
                f"{MAX_CLASSES:,} supported"
            )
        names, classes_from = sorted(seen), "names seen"
    lookup = {name: i for i, name in enumerate(names)}
    idx = {}
    for col, values in labels.items():
        for i, v in enumerate(values):
            if v not in lookup:
                raise FlnasError(
                    f"{source} line {i + 2}: column {col} has class {_shown(v)}, not one of {_listed(names)}"
                )
        idx[col] = np.array([lookup[v] for v in values], dtype=np.int64)
    return idx, names, classes_from


def parse_predictions(
    df: Any, *, classes: Sequence[str] | None = None, source: str = "predictions"
) -> Predictions:
    """Check a predictions DataFrame and turn its labels and demographics into arrays.

    Labels (y_true, y_pred) are either all whole-number class indices or class names. Classes: ``classes``
    when given; otherwise ``0..max`` for indices (max below :data:`MAX_CLASSES`) or the sorted names seen.
    Other numbers (``1.5``, ``nan``, ``inf``) are refused unless ``classes`` names them, and so is a mix of
    indices and names without ``classes``. Any problem raises :class:`FlnasError` naming ``source``, the line
    (header = line 1) and the column. Memory stays linear in the rows: no array is sized by a label's value.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise FlnasError(
            f"{source}: missing column(s) {', '.join(missing)} (needs y_true, y_pred, sex, age_approx)"
        )
    if len(df) == 0:
        raise FlnasError(f"{source}: has no prediction rows")
    labels: dict[str, list[str]] = {}
    for col in ("y_true", "y_pred"):
        values = list(df[col])
        for i, value in enumerate(values):
            if _is_missing(value) or (isinstance(value, str) and not value.strip()):
                raise FlnasError(f"{source} line {i + 2}: column {col} is empty")
        labels[col] = [_label_text(v) for v in values]
    idx, names, classes_from = _class_indices(source, labels, classes)

    sexes, ages = [], []
    for i, (s, a) in enumerate(zip(df["sex"], df["age_approx"], strict=True)):
        try:
            sexes.append(sex_group(s))
        except ValueError:
            raise FlnasError(
                f"{source} line {i + 2}: column sex has unknown value {s!r} (expected male, female or empty)"
            ) from None
        try:
            group = age_group(a)
            if group is not None and not 0 <= float(a) <= 130:  # as the ISIC loader: inf or -5 is no age
                raise ValueError(a)
            ages.append(group)
        except (TypeError, ValueError):
            raise FlnasError(
                f"{source} line {i + 2}: column age_approx has {_shown(str(a))}, not an age in years "
                "(a number from 0 to 130; leave it empty when unknown)"
            ) from None
    return Predictions(
        y_true=idx["y_true"],
        y_pred=idx["y_pred"],
        sex=np.array(sexes, dtype=object),
        age_group=np.array(ages, dtype=object),
        classes=names,
        classes_from=classes_from,
    )


def fairness_from_predictions(
    df: Any, *, classes: Sequence[str] | None = None, source: str = "predictions"
) -> dict[str, Any]:
    """:func:`fairness_metrics` of a predictions DataFrame, plus ``classes`` and ``classes_from``."""
    pred = parse_predictions(df, classes=classes, source=source)
    result = fairness_metrics(
        pred.y_true, pred.y_pred, classes=pred.classes, sex=pred.sex, age_group=pred.age_group
    )
    result["classes"] = pred.classes
    result["classes_from"] = pred.classes_from
    return result


def read_predictions(path: Any) -> Any:
    """Read a predictions CSV as strings (empty cells stay ""); bad files raise one-line FlnasErrors."""
    from pathlib import Path

    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FlnasError(f"{path}: predictions file not found")
    if not path.is_file():
        raise FlnasError(f"{path}: is not a file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise FlnasError(f"{path}: file is empty (expected a header y_true,y_pred,sex,age_approx)") from None
    except pd.errors.ParserError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cannot be parsed"
        raise FlnasError(f"{path}: malformed CSV ({reason})") from None
    except UnicodeDecodeError:
        raise FlnasError(f"{path}: is not a UTF-8 text CSV file") from None

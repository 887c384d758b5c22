"""Predictions tables (``predictions.csv``): check one and compute its fairness metrics.

A table has ``y_true`` and ``y_pred`` (class names or whole-number indices) and sensitive columns. Which
columns are sensitive, and how each becomes groups, is a list of
:class:`~flnas.data.attributes.SensitiveColumn`: categorical (each value a group), binned (numeric, with
the ISIC age edge rules) or a dataset's own rule. Without one, the table is read as an ISIC
``predictions.csv`` (:data:`flnas.data.groups.PREDICTION_COLUMNS`: ``sex`` and ``age_approx``). Every
problem raises :class:`~flnas.errors.FlnasError`: one sentence naming the source, the line and the column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flnas.data.attributes import (
    JOIN,
    Attributes,
    SensitiveColumn,
    add_intersections,
    bin_labels,
    check_attributes,
    check_edges,
    group_order,
    is_missing,
)
from flnas.data.groups import DEFAULT_ATTRIBUTES, PREDICTION_COLUMNS
from flnas.errors import FlnasError
from flnas.evaluate.fairness import fairness_metrics

_is_missing = is_missing

LABEL_COLUMNS = ("y_true", "y_pred")


@dataclass
class Predictions:
    """A predictions table turned into what :func:`~flnas.evaluate.fairness.fairness_metrics` takes."""

    y_true: np.ndarray
    y_pred: np.ndarray
    groups: dict[str, np.ndarray]  # attribute -> per-record group (None: in no group)
    attributes: Attributes  # attribute -> its groups, in order (intersections last)
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


def sensitive_columns(
    columns: Sequence[str],
    bins: Mapping[str, Sequence[float]] | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> list[SensitiveColumn]:
    """The :class:`SensitiveColumn` of each named column: binned where ``bins`` has edges, else categorical.

    ``labels`` names a binned column's groups (default ``<30``, ``30-65``, ``>65``). Raises
    :class:`FlnasError` (one sentence) for a column named twice, bins of a column that is not sensitive,
    edges that do not increase, or a wrong number of labels.
    """
    names = [c.strip() for c in columns]
    if not names or any(not c for c in names):
        raise FlnasError("name at least one sensitive column, e.g. sex,age (no empty names)")
    if len(set(names)) != len(names):
        twice = next(c for c in names if names.count(c) > 1)
        raise FlnasError(f"the sensitive column {twice} is named twice")
    bins, labels = dict(bins or {}), dict(labels or {})
    for column in [*bins, *labels]:
        if column not in names:
            raise FlnasError(
                f"bins are given for {column}, which is not one of the sensitive columns {', '.join(names)}"
            )
    out = []
    for column in names:
        if column not in bins:
            out.append(SensitiveColumn(column))
            continue
        try:
            edges = check_edges(bins[column], what=f"the bins of {column}")
        except (TypeError, ValueError) as exc:
            raise FlnasError(str(exc)) from None
        names_of = tuple(str(x).strip() for x in labels.get(column, ())) or bin_labels(edges)
        if len(names_of) != len(edges) + 1:
            raise FlnasError(
                f"the bins of {column} have {len(edges)} edge(s), so {len(edges) + 1} labels, not {len(names_of)}"
            )
        out.append(SensitiveColumn(column, edges=edges, labels=names_of,
                                   problem="{shown}, not a number (leave it empty when unknown)"))
    return out


def recorded_columns(dataset: Mapping[str, Any]) -> tuple[list[SensitiveColumn], list[list[str]]] | None:
    """The sensitive columns and intersections a metrics.json ``dataset`` section records, or None.

    The evaluator records, for a dataset read through its own card, the predictions.csv column of each
    attribute (and its bins when numeric); the groups and their order are the recorded ``attributes``, so
    the audit of its predictions gives its own test metrics. None when nothing usable is recorded (ISIC,
    whose sex and age_approx columns are read by default, or an older file).
    """
    record, attributes = dataset.get("sensitive"), dataset.get("attributes")
    if not isinstance(record, dict) or not record or not isinstance(attributes, dict):
        return None
    columns = []
    for attribute, spec in record.items():
        groups = tuple(attributes.get(attribute) or ())
        if not isinstance(spec, dict) or not isinstance(spec.get("column"), str) or len(groups) < 2:
            return None
        bins = spec.get("bins")
        if bins is not None:
            if not isinstance(bins, list) or not all(isinstance(b, (int, float)) for b in bins):
                return None
            columns.append(SensitiveColumn(spec["column"], attribute=attribute, edges=tuple(bins),
                                           labels=groups, problem="{shown}, not a number (or empty)"))
        else:
            columns.append(SensitiveColumn(spec["column"], attribute=attribute, groups=groups,
                                           convert=_one_of(groups),
                                           problem=f"{{shown}}, not one of {', '.join(groups)} (or empty)"))
    intersect = [a.split(JOIN) for a in attributes if JOIN in a]
    return columns, intersect


def _one_of(groups: tuple[str, ...]) -> Any:
    """A ``convert`` for a column of group names: the name, None when empty, ValueError for anything else."""

    def convert(value: Any) -> str | None:
        if is_missing(value):
            return None
        name = str(value).strip()
        if name not in groups:
            raise ValueError(name)
        return name

    return convert


def _column_groups(
    df: Any, spec: SensitiveColumn, source: str
) -> tuple[list[str | None], tuple[str, ...]]:
    """The group of every row under ``spec`` and the attribute's groups (the values seen when categorical)."""
    values = []
    for i, value in enumerate(df[spec.column]):
        try:
            values.append(spec.group_of(value))
        except (TypeError, ValueError):
            problem = spec.problem.format(shown=_shown(str(value)))
            raise FlnasError(f"{source} line {i + 2}: column {spec.column} has {problem}") from None
    groups = spec.fixed_groups() or group_order(v for v in values if v is not None)
    if len(groups) < 2:
        seen = f"only the value {groups[0]!r}" if groups else "no value"
        raise FlnasError(
            f"{source}: column {spec.column} has {seen}, and a fairness comparison needs at least two groups "
            "(leave it out of the sensitive columns)"
        )
    return values, groups


def _unique_names(attributes: Attributes, groups: dict[str, list]) -> tuple[Attributes, dict[str, list]]:
    """Qualify the values of categorical columns that share a group name with another one (``smoker=yes``)."""
    owners: dict[str, list[str]] = {}
    for attribute, names in attributes.items():
        for name in names:
            owners.setdefault(name, []).append(attribute)
    shared = {a for owned in owners.values() if len(owned) > 1 for a in owned}
    for attribute in shared:
        attributes[attribute] = tuple(f"{attribute}={g}" for g in attributes[attribute])
        groups[attribute] = [None if g is None else f"{attribute}={g}" for g in groups[attribute]]
    return attributes, groups


def parse_predictions(
    df: Any,
    *,
    classes: Sequence[str] | None = None,
    source: str = "predictions",
    sensitive: Sequence[SensitiveColumn] | None = None,
    intersect: Sequence[Sequence[str]] = (),
) -> Predictions:
    """Check a predictions DataFrame and turn its labels and sensitive columns into arrays.

    Labels (y_true, y_pred) are either all whole-number class indices or class names. Classes: ``classes``
    when given; otherwise ``0..max`` for indices (max below :data:`MAX_CLASSES`) or the sorted names seen.
    Other numbers (``1.5``, ``nan``, ``inf``) are refused unless ``classes`` names them, and so is a mix of
    indices and names without ``classes``. ``sensitive`` says which columns are attributes (default: ISIC's
    ``sex`` and ``age_approx``); ``intersect`` lists attributes whose combinations are one more attribute
    each (``["sex", "age"]`` -> ``sex/age``). Categorical values that two columns share are qualified
    (``smoker=yes``) so group names stay unique. Any problem raises :class:`FlnasError` naming ``source``,
    the line (header = line 1) and the column. Memory stays linear in the rows.
    """
    columns = tuple(PREDICTION_COLUMNS if sensitive is None else sensitive)
    needed = [*LABEL_COLUMNS, *(c.column for c in columns)]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        other = "; name the table's own sensitive columns otherwise" if sensitive is None else ""
        raise FlnasError(f"{source}: missing column(s) {', '.join(missing)} (needs {', '.join(needed)}{other})")
    if len(df) == 0:
        raise FlnasError(f"{source}: has no prediction rows")
    labels: dict[str, list[str]] = {}
    for col in LABEL_COLUMNS:
        values = list(df[col])
        for i, value in enumerate(values):
            if _is_missing(value):
                raise FlnasError(f"{source} line {i + 2}: column {col} is empty")
        labels[col] = [_label_text(v) for v in values]
    idx, names, classes_from = _class_indices(source, labels, classes)

    attributes: Attributes = {}
    groups: dict[str, list] = {}
    for spec in columns:
        if spec.name in attributes:
            raise FlnasError(f"{source}: the sensitive column {spec.column} is named twice")
        groups[spec.name], attributes[spec.name] = _column_groups(df, spec, source)
    attributes, groups = _unique_names(attributes, groups)
    try:
        check_attributes(attributes)
        attributes, arrays = add_intersections(
            attributes, {a: np.array(v, dtype=object) for a, v in groups.items()}, intersect
        )
    except ValueError as exc:
        raise FlnasError(f"{source}: {exc}") from None
    return Predictions(
        y_true=idx["y_true"],
        y_pred=idx["y_pred"],
        groups=arrays,
        attributes=attributes,
        classes=names,
        classes_from=classes_from,
    )


def prediction_result(pred: Predictions, metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` plus ``classes``, ``classes_from`` and, for attributes other than ISIC's, ``attributes``."""
    result = {**metrics, "classes": pred.classes, "classes_from": pred.classes_from}
    if pred.attributes != DEFAULT_ATTRIBUTES:
        result["attributes"] = {a: list(g) for a, g in pred.attributes.items()}
    return result


def fairness_from_predictions(
    df: Any,
    *,
    classes: Sequence[str] | None = None,
    source: str = "predictions",
    sensitive: Sequence[SensitiveColumn] | None = None,
    intersect: Sequence[Sequence[str]] = (),
) -> dict[str, Any]:
    """:func:`fairness_metrics` of a predictions DataFrame (arguments as :func:`parse_predictions`).

    Adds ``classes``, ``classes_from`` and, when the attributes are not ISIC's sex and age, ``attributes``.
    """
    pred = parse_predictions(df, classes=classes, source=source, sensitive=sensitive, intersect=intersect)
    metrics = fairness_metrics(
        pred.y_true, pred.y_pred, classes=pred.classes, groups=pred.groups, attributes=pred.attributes
    )
    return prediction_result(pred, metrics)


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
        raise FlnasError(f"{path}: file is empty (expected a header such as y_true,y_pred,sex,age_approx)") from None
    except pd.errors.ParserError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cannot be parsed"
        raise FlnasError(f"{path}: malformed CSV ({reason})") from None
    except UnicodeDecodeError:
        raise FlnasError(f"{path}: is not a UTF-8 text CSV file") from None

"""Fairness metrics of FL-NAS as *disaggregated metrics* (in the spirit of fairlearn's ``MetricFrame``).

The sensitive attributes and their groups are data (:mod:`flnas.data.attributes`): ISIC 2019 has sex
(male, female) and age (young, middle, old); another dataset may have skin type I-VI, and an intersection
such as ``sex/age`` is one more attribute with groups ``female/old``, .... Everything is computed from one
table: a confusion matrix per group of every attribute plus the overall one. From it come overall and
per-group accuracy, the paper's Unfairness score, and the per-pair equal-opportunity / equalised-odds gaps
(EOPP1, EOPP2, EODD) exactly as defined in ``shared/DESIGN.md`` and ``docs/metrics.md``:

- Unfairness = mean over the non-empty groups of all attributes of ``|Acc_g - Acc_overall|``.
- For a pair of groups of one attribute and each class (one-vs-rest): TPR, FPR, TNR in each group. A rate
  whose denominator is 0 in either group is undefined for that pair and class and is skipped, never 0.
- EOPP1 = mean |dTPR|, EOPP2 = mean |dTNR|, EODD = mean max(|dTPR|, |dFPR|) over the classes that define
  them; the headline value is the mean over the pairs that define it, ``None`` where none does.

Classes are always passed explicitly (the dataset's label list), so a split that lacks a class still uses
the same denominators as every other split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flnas.data.attributes import (
    Attributes,
    all_groups,
    check_attributes,
    group_order,
    group_pairs,
    is_missing,
)
from flnas.data.groups import DEFAULT_ATTRIBUTES, KEYWORD_ATTRIBUTES

PAIR_METRICS = ("eodd", "eopp1", "eopp2")


def pair_name(a: str, b: str) -> str:
    """The key of a pair in ``pairs``: ``"male|female"``."""
    return f"{a}|{b}"


# --------------------------------------------------------------------------------------------------
# the sensitive groups of each record


def _is_missing(value: Any) -> bool:
    return is_missing(value)


def resolve_groups(
    n: int,
    groups: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Sequence[str]] | None = None,
    keywords: Mapping[str, Any] | None = None,
) -> tuple[Attributes, dict[str, np.ndarray]]:
    """The attributes and, per attribute, an object array of ``n`` group names (None: in no group).

    ``groups`` maps attribute -> per-record values; ``keywords`` are the same passed as keyword arguments
    (``sex=...``; ``age_group=`` is the age attribute, as before groups were data). ``attributes`` gives
    each attribute's groups in report order; without it, data whose attributes are all ISIC 2019's reads
    as ISIC's sex and age (:data:`flnas.data.groups.DEFAULT_ATTRIBUTES`), and any other attribute's groups
    are its values in :func:`~flnas.data.attributes.group_order` (numbers by value). An attribute with no
    values given has every record in no group. A value that is not a group of its attribute raises
    ValueError naming the attribute and the record.
    """
    given: dict[str, Any] = dict(groups or {})
    for key, values in (keywords or {}).items():
        given[KEYWORD_ATTRIBUTES.get(key, key)] = values
    given = {a: v for a, v in given.items() if v is not None}
    if attributes is None:
        inferred = {a: tuple(DEFAULT_ATTRIBUTES.get(a, ())) for a in given}
        for a, values in given.items():
            if not inferred[a]:
                column = np.asarray(values, dtype=object).reshape(-1)
                inferred[a] = group_order(v for v in column if not is_missing(v))
        attributes = inferred if set(given) - set(DEFAULT_ATTRIBUTES) else DEFAULT_ATTRIBUTES
    attrs = check_attributes(attributes)
    unknown = [a for a in given if a not in attrs]
    if unknown:
        raise ValueError(f"groups given for {unknown[0]!r}, which is not one of the attributes {', '.join(attrs)}")
    arrays: dict[str, np.ndarray] = {}
    for attribute, names in attrs.items():
        if attribute not in given:
            arrays[attribute] = np.full(n, None, dtype=object)
            continue
        arr = np.asarray(given[attribute], dtype=object).reshape(-1)
        if len(arr) != n:
            raise ValueError(f"{attribute} has {len(arr)} values but y_true has {n}")
        allowed = set(names)
        out = np.full(n, None, dtype=object)
        for i, value in enumerate(arr):
            if is_missing(value):
                continue
            if value not in allowed:
                raise ValueError(
                    f"{attribute}[{i}] = {value!r} is not one of {', '.join(names)} (or None for unknown)"
                )
            out[i] = str(value)
        arrays[attribute] = out
    return attrs, arrays


# --------------------------------------------------------------------------------------------------
# the per-group confusion table


def _check_labels(y_true: Any, y_pred: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    yt = np.asarray(y_true, dtype=np.int64).reshape(-1)
    yp = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if len(yt) != len(yp):
        raise ValueError(f"y_true has {len(yt)} values but y_pred has {len(yp)}")
    for name, arr in (("y_true", yt), ("y_pred", yp)):
        bad = np.flatnonzero((arr < 0) | (arr >= num_classes))
        if len(bad):
            raise ValueError(f"{name}[{bad[0]}] = {arr[bad[0]]} is not a class index in 0..{num_classes - 1}")
    return yt, yp


def confusion_table(
    y_true: Any,
    y_pred: Any,
    *,
    num_classes: int,
    groups: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Sequence[str]] | None = None,
    **by_attribute: Any,
) -> dict[str, np.ndarray]:
    """Confusion matrices ``[true, pred]`` (int64, ``num_classes`` square) for ``overall`` and each group.

    The groups are those of ``attributes`` in order (see :func:`resolve_groups` for ``groups``,
    ``attributes`` and the ``sex=``/``age_group=`` keywords); a record in no group of an attribute is
    counted only in ``overall`` and the other attributes' groups.
    """
    yt, yp = _check_labels(y_true, y_pred, num_classes)
    attrs, arrays = resolve_groups(len(yt), groups, attributes, by_attribute)
    flat = yt * num_classes + yp

    def matrix(mask: np.ndarray | None) -> np.ndarray:
        cells = flat if mask is None else flat[mask]
        return np.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes, num_classes)

    table = {"overall": matrix(None)}
    for attribute, names in attrs.items():
        table.update({g: matrix(arrays[attribute] == g) for g in names})
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


def metrics_from_table(
    table: dict[str, np.ndarray], attributes: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """All fairness metrics from a :func:`confusion_table` of ``attributes`` (default: ISIC's sex and age).

    See the module docstring for the definitions.
    """
    attrs = DEFAULT_ATTRIBUTES if attributes is None else attributes
    overall = table["overall"]
    accuracy = _accuracy(overall)
    groups = {
        g: {"accuracy": _accuracy(table[g]), "count": int(table[g].sum())}
        for g in all_groups(attrs)
        if table[g].sum() > 0
    }
    unfairness = None
    if groups and accuracy is not None:
        unfairness = float(np.mean([abs(v["accuracy"] - accuracy) for v in groups.values()]))
    pairs: dict[str, dict[str, float | None]] = {}
    for a, b in group_pairs(attrs):
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
    y_true: Any,
    y_pred: Any,
    *,
    classes: Sequence[str] | int,
    groups: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Sequence[str]] | None = None,
    **by_attribute: Any,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, Unfairness, EODD, EOPP1, EOPP2, per-group and per-pair values.

    ``y_true``/``y_pred`` are int class indices into ``classes`` (the dataset's label list, or its length).
    ``groups`` maps each sensitive attribute to its per-record group (None = in no group: the record counts
    only in the overall figures), ``attributes`` each attribute to its groups in order (e.g.
    ``{"skin_type": ("I", ..., "VI")}``); the attributes may also be passed by keyword (``sex=...``,
    ``age_group=...``), and without ``attributes`` ISIC's sex and age are assumed (:func:`resolve_groups`).
    Undefined values are ``None``. Returns keys accuracy, balanced_accuracy, unfairness, eodd, eopp1, eopp2,
    count, groups {name: {accuracy, count}} (non-empty groups, in attribute order: male, female, young,
    middle, old for ISIC) and pairs {"male|female": {eodd, eopp1, eopp2}, ...} (every pair of groups within
    each attribute; values None where undefined).
    """
    num_classes = classes if isinstance(classes, int) else len(classes)
    if num_classes < 1:
        raise ValueError("classes must name at least one class")
    yt, yp = _check_labels(y_true, y_pred, num_classes)
    attrs, arrays = resolve_groups(len(yt), groups, attributes, by_attribute)
    table = confusion_table(yt, yp, num_classes=num_classes, groups=arrays, attributes=attrs)
    return metrics_from_table(table, attrs)

"""Confidence intervals for the fairness metrics: a seeded percentile bootstrap over images.

A test split of a few hundred images, with an "old" group of about 30, gives metrics whose sampling error is
several points; a difference between two models smaller than that is not evidence. This module resamples
the images with replacement (``resamples`` times, 1,000 by default, from ``numpy.random.default_rng(seed)``)
and recomputes every metric of :mod:`flnas.evaluate.fairness` on each resample:

- one confusion matrix per resample and per group (overall, then every group of every attribute: male,
  female, young, middle, old for ISIC) is counted with a single ``np.bincount`` per chunk of resamples, and
- :func:`metrics_from_tables` evaluates the definitions of :func:`flnas.evaluate.fairness.metrics_from_table`
  on all of them at once (tests check the two agree table by table).

A value undefined on a resample (a group absent from it, a pair in which no class defines a rate) is
skipped, never counted as 0; how many resamples were skipped is reported with the interval. The interval of
a metric is the central ``level`` percentile range of its defined resampled values.

Paired comparison: two models scored on the same test images and the same resampled indices (same ``seed``,
``resamples`` and number of images) give, per resample, the difference of a metric; :func:`paired_difference`
returns its percentile interval, and a claim that one model is better needs that interval to exclude 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flnas.data.attributes import all_groups, group_pairs
from flnas.data.groups import DEFAULT_ATTRIBUTES
from flnas.evaluate.fairness import confusion_table, fairness_metrics, pair_name, resolve_groups

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0
#: resamples drawn per call of the generator; fixed, so the indices never depend on memory or batch choices
CHUNK = 100
#: the headline metrics that get an interval (per-group accuracy is keyed ``groups/<name>``)
CI_METRICS = ("accuracy", "balanced_accuracy", "unfairness", "eodd", "eopp1", "eopp2")
#: bytes of confusion tables :func:`bootstrap` holds at once (it measures the resamples in batches that fit)
TABLE_BUDGET = 64 * 2**20


def resample_indices(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The resampled image indices, in chunks of shape ``(<= CHUNK, n)``: row b is resample b.

    The same ``(n, resamples, seed)`` always gives the same indices, which is what makes two models'
    bootstraps paired.
    """
    if n < 1:
        raise ValueError("cannot bootstrap an empty set of images")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1 (got {resamples})")
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, CHUNK):
        yield rng.integers(0, n, size=(min(CHUNK, resamples - start), n))


def bootstrap_tables(
    y_true: Any,
    y_pred: Any,
    *,
    num_classes: int,
    groups: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Sequence[str]] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    indices: Iterable[np.ndarray] | None = None,
    **by_attribute: Any,
) -> np.ndarray:
    """Confusion tables of every resample: int64 array ``(resamples, 1 + groups, K, K)``.

    Axis 1 is overall, then every group of every attribute in order (groups and attributes as in
    :func:`flnas.evaluate.fairness.resolve_groups`); each matrix is ``[true, pred]`` as in
    :func:`flnas.evaluate.fairness.confusion_table` (which also checks the inputs). ``indices`` (chunks of
    rows of image indices) replaces :func:`resample_indices` (``resamples``, ``seed``).
    """
    k = int(num_classes)
    yt = np.asarray(y_true, dtype=np.int64).reshape(-1)
    attrs, arrays = resolve_groups(len(yt), groups, attributes, by_attribute)
    # confusion_table validates the labels; its per-record masks are rebuilt here as cell numbers
    confusion_table(y_true, y_pred, num_classes=k, groups=arrays, attributes=attrs)
    yp = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    n, cells_per_table = len(yt), k * k
    code = yt * k + yp
    slots = [code]  # overall: table 0
    table = 1
    for attribute, names in attrs.items():
        slot = np.full(n, -1, dtype=np.int64)
        for name in names:
            members = arrays[attribute] == name
            slot[members] = table * cells_per_table + code[members]
            table += 1
        slots.append(slot)
    cells = np.stack(slots)  # (1 + attributes, n): each record's cell in overall and each attribute (-1: none)
    size = table * cells_per_table
    chunks = []
    for idx in resample_indices(n, resamples, seed) if indices is None else indices:
        idx = np.atleast_2d(np.asarray(idx, dtype=np.int64))
        c = len(idx)
        picked = cells[:, idx]  # (1 + attributes, c, n)
        offsets = (np.arange(c) * size)[None, :, None]
        flat = (picked + offsets)[picked >= 0]
        chunks.append(np.bincount(flat, minlength=c * size).reshape(c, table, k, k))
    return np.concatenate(chunks)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (undefined, never 0)."""
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean of the finite values along ``axis``; NaN where there are none."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    return _divide(total, finite.sum(axis=axis).astype(np.float64))


def metrics_from_tables(
    tables: np.ndarray, attributes: Mapping[str, Sequence[str]] | None = None
) -> dict[str, np.ndarray]:
    """Every metric of :func:`~flnas.evaluate.fairness.metrics_from_table` for a stack of tables.

    ``tables``: ``(B, 1 + groups, K, K)`` from :func:`bootstrap_tables` of ``attributes`` (default: ISIC's).
    Returns flat keys -> ``(B,)`` float arrays, NaN where undefined: the :data:`CI_METRICS`,
    ``groups/<group>`` (accuracy) and ``pairs/<a|b>/<eodd|eopp1|eopp2>``.
    """
    attrs = DEFAULT_ATTRIBUTES if attributes is None else attributes
    names = all_groups(attrs)
    t = np.asarray(tables, dtype=np.float64)
    counts = t.sum(axis=(2, 3))  # (B, T)
    diag = np.diagonal(t, axis1=2, axis2=3)  # (B, T, K)
    accuracy = _divide(diag.sum(axis=2), counts)  # (B, T): overall then each group
    support = t[:, 0].sum(axis=2)  # (B, K) true labels per class
    present = support > 0
    recall = _divide(diag[:, 0], support)
    balanced = _divide(np.where(present, recall, 0.0).sum(axis=1), present.sum(axis=1).astype(np.float64))
    gaps = np.abs(accuracy[:, 1:] - accuracy[:, :1])  # NaN for empty groups
    out: dict[str, np.ndarray] = {
        "accuracy": accuracy[:, 0],
        "balanced_accuracy": balanced,
        "unfairness": _nanmean(gaps, axis=1),
    }
    out.update({f"groups/{g}": accuracy[:, i + 1] for i, g in enumerate(names)})

    row = t.sum(axis=3)  # TP + FN per class
    col = t.sum(axis=2)  # TP + FP per class
    fp = col - diag
    neg = counts[:, :, None] - row  # FP + TN
    tpr, fpr, tnr = _divide(diag, row), _divide(fp, neg), _divide(neg - fp, neg)
    index = {name: i for i, name in enumerate(("overall", *names))}
    per_metric: dict[str, list[np.ndarray]] = {"eodd": [], "eopp1": [], "eopp2": []}
    for a, b in group_pairs(attrs):
        ia, ib = index[a], index[b]
        d_tpr = np.abs(tpr[:, ia] - tpr[:, ib])
        d_fpr = np.abs(fpr[:, ia] - fpr[:, ib])
        d_tnr = np.abs(tnr[:, ia] - tnr[:, ib])
        both = np.isfinite(d_tpr) & np.isfinite(d_fpr)
        values = {
            "eodd": _nanmean(np.where(both, np.maximum(d_tpr, d_fpr), np.nan), axis=1),
            "eopp1": _nanmean(d_tpr, axis=1),
            "eopp2": _nanmean(d_tnr, axis=1),
        }
        for metric, v in values.items():
            out[f"pairs/{pair_name(a, b)}/{metric}"] = v
            per_metric[metric].append(v)
    for metric, pair_values in per_metric.items():
        stacked = np.stack(pair_values, axis=1) if pair_values else np.full((len(t), 0), np.nan)
        out[metric] = _nanmean(stacked, axis=1)
    return out


def percentile_interval(values: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[list[float] | None, int]:
    """(``[lo, hi]`` of the defined values, or None when there are none; how many were undefined)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    undefined = int(len(values) - len(finite))
    if not len(finite):
        return None, undefined
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [float(lo), float(hi)], undefined


def test_set_key(y_true: Any, *groups: Any) -> str:
    """A short digest of the labels and groups (one array per attribute) of a test set: paired tests need equal keys."""
    digest = hashlib.sha256()
    digest.update(np.asarray(y_true, dtype=np.int64).tobytes())
    for values in groups:
        arr = [""] * len(np.asarray(y_true)) if values is None else np.asarray(values, dtype=object)
        digest.update("\x1f".join("" if v is None else str(v) for v in arr).encode())
    return digest.hexdigest()[:16]


@dataclass
class Bootstrap:
    """The resampled metrics of one model's predictions (flat keys as in :func:`metrics_from_tables`)."""

    values: dict[str, np.ndarray]
    n: int
    resamples: int
    seed: int
    level: float = DEFAULT_LEVEL
    test_set: str = ""  # :func:`test_set_key` of the images; paired comparisons need the same one
    point: dict[str, Any] = field(default_factory=dict)  # fairness_metrics of the full set

    def interval(self, key: str) -> tuple[list[float] | None, int]:
        """``([lo, hi] or None, undefined resamples)`` of one flat key."""
        return percentile_interval(self.values[key], self.level)

    def to_json(self) -> dict[str, Any]:
        """``{"ci": {...}, "bootstrap": {...}}``: what `flnas metrics --ci` and metrics.json carry.

        ``ci`` has ``[lo, hi]`` (or null) for each of :data:`CI_METRICS` and ``groups: {name: [lo, hi]}`` for
        the groups present in the full set; ``bootstrap`` says how (method, resamples, seed, level, images)
        and how many resamples left each value undefined (skipped).
        """
        ci: dict[str, Any] = {}
        undefined: dict[str, Any] = {}
        for key in CI_METRICS:
            ci[key], undefined[key] = self.interval(key)
        ci["groups"], undefined["groups"] = {}, {}
        for g in self.point.get("groups") or {}:  # the groups with a record in the full set
            ci["groups"][g], undefined["groups"][g] = self.interval(f"groups/{g}")
        return {
            "ci": ci,
            "bootstrap": {
                "method": "percentile",
                "level": self.level,
                "resamples": self.resamples,
                "seed": self.seed,
                "images": self.n,
                "undefined": undefined,
            },
        }


def bootstrap(
    y_true: Any,
    y_pred: Any,
    *,
    classes: Sequence[str] | int,
    groups: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Sequence[str]] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    **by_attribute: Any,
) -> Bootstrap:
    """Resample the images ``resamples`` times (seeded) and compute every metric on each resample.

    ``groups``/``attributes`` (or ``sex=``-style keywords) as in :func:`flnas.evaluate.fairness.fairness_metrics`.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (got {level})")
    num_classes = classes if isinstance(classes, int) else len(classes)
    n = int(np.asarray(y_true).size)
    attrs, arrays = resolve_groups(n, groups, attributes, by_attribute)
    # the tables of a batch of resamples (int64 counts and metrics_from_tables' float64 copy) stay within
    # TABLE_BUDGET: memory does not grow with --resamples, and 1,000 classes (48 MB a resample) still fit
    batch = max(1, TABLE_BUDGET // ((1 + len(all_groups(attrs))) * num_classes**2 * 16))
    parts = [
        metrics_from_tables(
            bootstrap_tables(
                y_true, y_pred, num_classes=num_classes, groups=arrays, attributes=attrs, indices=[rows[i : i + batch]]
            ),
            attrs,
        )
        for rows in resample_indices(n, resamples, seed)
        for i in range(0, len(rows), batch)
    ]
    point = fairness_metrics(y_true, y_pred, classes=num_classes, groups=arrays, attributes=attrs)
    return Bootstrap(
        values={key: np.concatenate([part[key] for part in parts]) for key in parts[0]},
        n=int(np.asarray(y_true).size),
        resamples=int(resamples),
        seed=int(seed),
        level=float(level),
        test_set=test_set_key(y_true, *arrays.values()),
        point=point,
    )


def intervals(y_true: Any, y_pred: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"ci": ..., "bootstrap": ...}`` of :meth:`Bootstrap.to_json` (arguments as :func:`bootstrap`)."""
    return bootstrap(y_true, y_pred, **kwargs).to_json()


def fairness_with_intervals(
    df: Any,
    *,
    classes: Sequence[str] | None = None,
    source: str = "predictions",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    sensitive: Sequence[Any] | None = None,
    intersect: Sequence[Sequence[str]] = (),
) -> dict[str, Any]:
    """:func:`~flnas.evaluate.predictions.fairness_from_predictions` plus ``ci`` and ``bootstrap`` (one parse)."""
    from flnas.evaluate.predictions import parse_predictions, prediction_result

    pred = parse_predictions(df, classes=classes, source=source, sensitive=sensitive, intersect=intersect)
    boot = bootstrap(
        pred.y_true,
        pred.y_pred,
        classes=pred.classes,
        groups=pred.groups,
        attributes=pred.attributes,
        resamples=resamples,
        seed=seed,
        level=level,
    )
    return {**prediction_result(pred, boot.point), **boot.to_json()}


@dataclass(frozen=True)
class Difference:
    """A paired bootstrap of ``a - b`` for one metric: the observed difference and its interval."""

    key: str
    estimate: float | None  # a - b on the full test set
    interval: list[float] | None  # [lo, hi] of the resampled differences; None when never defined
    undefined: int  # resamples where either model's value was undefined (skipped)

    def excludes_zero(self) -> bool:
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)


def paired_difference(a: Bootstrap, b: Bootstrap, key: str) -> Difference:
    """The paired bootstrap interval of ``a - b`` for ``key`` (same images, same resampled indices)."""
    same = (a.n, a.resamples, a.seed, a.test_set) == (b.n, b.resamples, b.seed, b.test_set)
    if not same:
        raise ValueError(
            "a paired bootstrap needs both models scored on the same test images with the same resamples and seed"
        )
    diff = a.values[key] - b.values[key]
    interval, undefined = percentile_interval(diff, a.level)
    estimate = None
    pa, pb = _point(a, key), _point(b, key)
    if pa is not None and pb is not None:
        estimate = pa - pb
    return Difference(key, estimate, interval, undefined)


def _point(boot: Bootstrap, key: str) -> float | None:
    """The full-set value of a flat key (``accuracy``, ``groups/old``, ``pairs/male|female/eodd``)."""
    parts = key.split("/")
    if parts[0] == "groups":
        value = ((boot.point.get("groups") or {}).get(parts[1]) or {}).get("accuracy")
    elif parts[0] == "pairs":
        value = ((boot.point.get("pairs") or {}).get(parts[1]) or {}).get(parts[2])
    else:
        value = boot.point.get(key)
    return None if value is None else float(value)


def is_better(a: Bootstrap, b: Bootstrap, key: str, *, higher_better: bool) -> bool:
    """True when the paired interval of ``a - b`` lies wholly on the better side of 0."""
    diff = paired_difference(a, b, key)
    if diff.interval is None:
        return False
    return diff.interval[0] > 0 if higher_better else diff.interval[1] < 0


__all__ = [
    "CI_METRICS",
    "DEFAULT_LEVEL",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "Bootstrap",
    "Difference",
    "bootstrap",
    "bootstrap_tables",
    "fairness_with_intervals",
    "intervals",
    "is_better",
    "metrics_from_tables",
    "paired_difference",
    "percentile_interval",
    "resample_indices",
    "test_set_key",
]

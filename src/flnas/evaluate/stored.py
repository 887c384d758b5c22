"""A model's test predictions packed into its metrics, so a report can compare two models image by image.

The study keeps only what the evaluator returns (the metrics JSON); ``predictions.csv`` exists only when an
output directory was given. A paired bootstrap (:func:`flnas.evaluate.bootstrap.paired_difference`) needs
both models' predictions on the same test images, so the evaluator stores them in
``metrics["test"]["predictions"]`` in a compact form: one character per image.

``{"format": "flnas-predictions/2", "images": <digest of the image ids>, "classes": K,
"y_true": "0312...", "y_pred": "0302...", "attributes": {"skin": ["I", "II", ...]}, "groups": {"skin": "01-0..."}}``

Labels are class indices written in base 36 (``0-9a-z``; a list of ints when there are more than 36
classes); each attribute's groups are indices into its group list, ``-`` where the image is in none (a list of
ints, -1 for none, when it has more than 36 groups). 1,000 test images take about 4 kB. Data with ISIC's sex
and age is written in format 1, as before groups were data: ``"sex": "01-0..."`` and ``"age_group":
"1120..."`` instead of ``attributes``/``groups`` (:data:`flnas.data.groups.PACKED_KEYS`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flnas.data.groups import DEFAULT_ATTRIBUTES, KEYWORD_ATTRIBUTES, PACKED_KEYS
from flnas.evaluate.fairness import resolve_groups

FORMAT = "flnas-predictions/2"
FORMAT_1 = "flnas-predictions/1"  # ISIC's sex and age under their own keys
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_NONE = "-"


@dataclass(frozen=True)
class StoredPredictions:
    """Unpacked test predictions: int labels, groups per attribute (None = in none), and the images' digest."""

    y_true: np.ndarray
    y_pred: np.ndarray
    groups: dict[str, np.ndarray]
    attributes: dict[str, tuple[str, ...]]
    num_classes: int
    images: str

    def __getattr__(self, name: str) -> np.ndarray:
        """An attribute's groups by its keyword name (``stored.sex``, ``stored.age_group``)."""
        groups = self.__dict__.get("groups") or {}
        key = KEYWORD_ATTRIBUTES.get(name, name)
        if key in groups:
            return groups[key]
        raise AttributeError(name)

    def same_images(self, other: StoredPredictions) -> bool:
        """True when both are predictions for the same test images with the same labels and groups."""
        return (
            self.images == other.images
            and self.num_classes == other.num_classes
            and np.array_equal(self.y_true, other.y_true)
            and self.attributes == other.attributes
            and all(np.array_equal(self.groups[a], other.groups[a]) for a in self.attributes)
        )


def images_digest(image_ids: Sequence[Any]) -> str:
    """A short digest of the ordered image ids."""
    return hashlib.sha256("\n".join(str(i) for i in image_ids).encode()).hexdigest()[:16]


def _labels(values: np.ndarray, num_classes: int) -> str | list[int]:
    if num_classes > len(_DIGITS):
        return [int(v) for v in values]
    return "".join(_DIGITS[int(v)] for v in values)


def _groups(values: np.ndarray, names: Sequence[str]) -> str | list[int]:
    index = {name: i for i, name in enumerate(names)}
    if len(names) > len(_DIGITS):
        return [index.get(v, -1) for v in values]
    return "".join(_DIGITS[index[v]] if v in index else _NONE for v in values)


def pack_predictions(
    y_true: Any,
    y_pred: Any,
    *,
    num_classes: int,
    groups: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Sequence[str]] | None = None,
    image_ids: Any = (),
    **by_attribute: Any,
) -> dict[str, Any]:
    """The compact JSON form of one split's predictions (see the module docstring).

    ``groups``/``attributes`` (or ``sex=``-style keywords) as in :func:`flnas.evaluate.fairness.fairness_metrics`.
    """
    yt = np.asarray(y_true, dtype=np.int64).reshape(-1)
    yp = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    attrs, arrays = resolve_groups(len(yt), groups, attributes, by_attribute)
    out: dict[str, Any] = {
        "format": FORMAT_1 if attrs == DEFAULT_ATTRIBUTES else FORMAT,
        "images": images_digest(list(image_ids)),
        "classes": int(num_classes),
        "y_true": _labels(yt, num_classes),
        "y_pred": _labels(yp, num_classes),
    }
    if attrs == DEFAULT_ATTRIBUTES:
        out.update({PACKED_KEYS[a]: _groups(arrays[a], names) for a, names in attrs.items()})
    else:
        out["attributes"] = {a: list(names) for a, names in attrs.items()}
        out["groups"] = {a: _groups(arrays[a], names) for a, names in attrs.items()}
    return out


def _unpack_labels(value: Any) -> np.ndarray:
    if isinstance(value, str):
        return np.array([_DIGITS.index(ch) for ch in value], dtype=np.int64)
    return np.asarray(value, dtype=np.int64)


def _unpack_groups(packed: Any, names: Sequence[str]) -> np.ndarray:
    if isinstance(packed, str):
        return np.array([None if ch == _NONE else names[_DIGITS.index(ch)] for ch in packed], dtype=object)
    return np.array([None if int(i) < 0 else names[int(i)] for i in packed], dtype=object)


def unpack_predictions(record: Any) -> StoredPredictions | None:
    """The predictions of :func:`pack_predictions`; None when ``record`` is absent or not in a known format."""
    if not isinstance(record, dict) or record.get("format") not in (FORMAT, FORMAT_1):
        return None
    try:
        if record["format"] == FORMAT_1:
            attributes = dict(DEFAULT_ATTRIBUTES)
            packed = {a: record[PACKED_KEYS[a]] for a in attributes}
        else:
            attributes = {str(a): tuple(str(g) for g in names) for a, names in record["attributes"].items()}
            packed = {a: record["groups"][a] for a in attributes}
        out = StoredPredictions(
            y_true=_unpack_labels(record["y_true"]),
            y_pred=_unpack_labels(record["y_pred"]),
            groups={a: _unpack_groups(packed[a], names) for a, names in attributes.items()},
            attributes=attributes,
            num_classes=int(record["classes"]),
            images=str(record["images"]),
        )
    except (KeyError, ValueError, IndexError, TypeError, AttributeError):
        return None
    n = len(out.y_true)
    if n == 0 or len(out.y_pred) != n or any(len(v) != n for v in out.groups.values()):
        return None
    return out

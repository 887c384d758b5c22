"""A model's test predictions packed into its metrics, so a report can compare two models image by image.

The study keeps only what the evaluator returns (the metrics JSON); ``predictions.csv`` exists only when an
output directory was given. A paired bootstrap (:func:`flnas.evaluate.bootstrap.paired_difference`) needs
both models' predictions on the same test images, so the evaluator stores them in
``metrics["test"]["predictions"]`` in a compact form: one character per image.

``{"format": "flnas-predictions/1", "images": <digest of the image ids>, "classes": K,
"y_true": "0312...", "y_pred": "0302...", "sex": "01-0...", "age_group": "1120..."}``

Labels are class indices written in base 36 (``0-9a-z``; a list of ints when there are more than 36
classes); ``sex`` and ``age_group`` are indices into :data:`~flnas.data.groups.SEX_GROUPS` and
:data:`~flnas.data.groups.AGE_GROUPS`, ``-`` where unknown. 1,000 test images take about 4 kB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flnas.data.groups import AGE_GROUPS, SEX_GROUPS

FORMAT = "flnas-predictions/1"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_NONE = "-"


@dataclass(frozen=True)
class StoredPredictions:
    """Unpacked test predictions: int labels, group names (None = unknown), and the images' digest."""

    y_true: np.ndarray
    y_pred: np.ndarray
    sex: np.ndarray
    age_group: np.ndarray
    num_classes: int
    images: str

    def same_images(self, other: StoredPredictions) -> bool:
        """True when both are predictions for the same test images with the same labels and groups."""
        return (
            self.images == other.images
            and self.num_classes == other.num_classes
            and np.array_equal(self.y_true, other.y_true)
            and np.array_equal(self.sex, other.sex)
            and np.array_equal(self.age_group, other.age_group)
        )


def images_digest(image_ids: Sequence[Any]) -> str:
    """A short digest of the ordered image ids."""
    return hashlib.sha256("\n".join(str(i) for i in image_ids).encode()).hexdigest()[:16]


def _labels(values: np.ndarray, num_classes: int) -> str | list[int]:
    if num_classes > len(_DIGITS):
        return [int(v) for v in values]
    return "".join(_DIGITS[int(v)] for v in values)


def _groups(values: Any, names: Sequence[str], n: int) -> str:
    lookup = {name: _DIGITS[i] for i, name in enumerate(names)}
    if values is None:
        return _NONE * n
    return "".join(lookup.get(v, _NONE) for v in np.asarray(values, dtype=object).reshape(-1))


def pack_predictions(
    y_true: Any, y_pred: Any, *, num_classes: int, sex: Any = None, age_group: Any = None, image_ids: Any = ()
) -> dict[str, Any]:
    """The compact JSON form of one split's predictions (see the module docstring)."""
    yt = np.asarray(y_true, dtype=np.int64).reshape(-1)
    yp = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    return {
        "format": FORMAT,
        "images": images_digest(list(image_ids)),
        "classes": int(num_classes),
        "y_true": _labels(yt, num_classes),
        "y_pred": _labels(yp, num_classes),
        "sex": _groups(sex, SEX_GROUPS, len(yt)),
        "age_group": _groups(age_group, AGE_GROUPS, len(yt)),
    }


def _unpack_labels(value: Any) -> np.ndarray:
    if isinstance(value, str):
        return np.array([_DIGITS.index(ch) for ch in value], dtype=np.int64)
    return np.asarray(value, dtype=np.int64)


def _unpack_groups(text: str, names: Sequence[str]) -> np.ndarray:
    return np.array([None if ch == _NONE else names[_DIGITS.index(ch)] for ch in text], dtype=object)


def unpack_predictions(record: Any) -> StoredPredictions | None:
    """The predictions of :func:`pack_predictions`; None when ``record`` is absent or not in this format."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    try:
        out = StoredPredictions(
            y_true=_unpack_labels(record["y_true"]),
            y_pred=_unpack_labels(record["y_pred"]),
            sex=_unpack_groups(record["sex"], SEX_GROUPS),
            age_group=_unpack_groups(record["age_group"], AGE_GROUPS),
            num_classes=int(record["classes"]),
            images=str(record["images"]),
        )
    except (KeyError, ValueError, IndexError, TypeError):
        return None
    n = len(out.y_true)
    if n == 0 or not len(out.y_pred) == len(out.sex) == len(out.age_group) == n:
        return None
    return out

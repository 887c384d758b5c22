"""In-memory dataset handed to the evaluator: decoded images as uint8 tensors, labels and sensitive groups.

The groups are data, not code: ``PreparedData.attributes`` names each sensitive attribute and its groups
(ISIC 2019: ``{"sex": ("male", "female"), "age": ("young", "middle", "old")}``), and each split's
``groups`` holds, per attribute, the group of every record (``None`` where it is in no group). An
intersection of attributes ``a`` and ``b`` is one more attribute ``"a/b"`` with groups ``"ga/gb"``
(:mod:`flnas.data.attributes`). Everything downstream (metrics, prompt, report) reads them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Split:
    """One split (train, val or test), aligned arrays of length N."""

    images: torch.Tensor  # uint8 (N, 3, H, W), decoded once from the cache
    labels: torch.Tensor  # int64 (N,), index into PreparedData.classes
    groups: dict[str, np.ndarray]  # attribute -> object (N,): the record's group of it, None where in none
    image_ids: list[str]  # the image name of each record
    #: the raw sensitive columns the groups were made from (column -> (N,) values, None/NaN where unknown),
    #: written next to the predictions so `flnas metrics --sensitive` can audit them again
    sensitive: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class PreparedData:
    """A dataset ready for training: fixed class list, the three splits, and how it was made."""

    name: str  # e.g. "ISIC 2019" or "synthetic (flnas)"
    root: Path
    classes: list[str]  # fixed once per dataset; every split and metric uses this list
    image_size: int
    splits: dict[str, Split]  # "train", "val", "test"
    #: attribute -> its groups in report order: the dataset's attributes first, then intersections ("a/b").
    #: Group names are unique across attributes; every split's ``groups`` has exactly these keys.
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    synthetic: bool = False
    summary: dict = field(default_factory=dict)  # the `flnas data summary --json` object
    #: attribute -> the predictions.csv column it is read from ({"column": C}, plus "bins" when numeric), as
    #: metrics.json records it so `flnas metrics` audits the predictions without flags; empty for ISIC
    sensitive: dict[str, dict] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def check_trainable(data: PreparedData) -> None:
    """Refuse data no candidate can be trained and measured on, before any training starts.

    Training needs at least 2 training records (batch norm cannot learn from one) and one each for
    validation (early stopping, the accuracy of record) and test; and at least two classes among the training
    records (a one-class set trains to a meaningless 100%). Raises :class:`DataError` with the sizes.
    """
    from flnas.errors import DataError

    missing = [name for name in ("train", "val", "test") if name not in data.splits]
    if missing:
        raise DataError(f"dataset {data.name!r} has no {' or '.join(missing)} split")
    sizes = {name: len(data.splits[name]) for name in ("train", "val", "test")}
    if sizes["train"] < 2 or sizes["val"] < 1 or sizes["test"] < 1:
        raise DataError(
            f"{data.root}: the {sum(sizes.values())} records split into {sizes['train']} train, {sizes['val']} "
            f"validation and {sizes['test']} test records; training needs at least 2 train records and 1 each "
            "for validation and test (use more records, e.g. a larger --subset)"
        )
    present = sorted({int(i) for i in data.splits["train"].labels.unique().tolist()})
    if len(present) < 2:
        only = data.classes[present[0]] if present and present[0] < len(data.classes) else "?"
        raise DataError(
            f"{data.root}: all {sizes['train']} training records are of class {only}; a classifier needs at "
            "least two classes (use data with more classes, or a larger --subset)"
        )

"""In-memory dataset handed to the evaluator: decoded images as uint8 tensors plus labels and demographics."""

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
    sex: np.ndarray  # object (N,): "male" | "female" | None
    age_group: np.ndarray  # object (N,): "young" | "middle" | "old" | None
    age_approx: np.ndarray  # float (N,): NaN where unknown
    image_ids: list[str]  # the image name of each record

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
    synthetic: bool = False
    summary: dict = field(default_factory=dict)  # the `flnas data summary --json` object

    @property
    def num_classes(self) -> int:
        return len(self.classes)

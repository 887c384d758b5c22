"""The official ISIC 2019 layout, read through a built-in dataset card.

The layout::

    ROOT/ISIC_2019_Training_Input/<image>.jpg
    ROOT/ISIC_2019_Training_GroundTruth.csv   image + one-hot MEL,NV,BCC,AK,BKL,DF,VASC,SCC[,UNK]
    ROOT/ISIC_2019_Training_Metadata.csv      image, age_approx, anatom_site_general, lesion_id, sex

:func:`isic_card` is the card that reads it (``flnas data card DIR`` prints it): the two CSVs joined on the
image name (the official ``_downsampled`` suffix ignored for the join and the file lookup), sex (male,
female; any other value is a bad record) and age from ``age_approx`` (young < 30, middle 30 to 65 inclusive,
old > 65; a number from 0 to 130), lesions kept in one split. :func:`load_records` is the loader of
:mod:`flnas.data.loader` with that card, returning :class:`Record` objects with ISIC's field names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from flnas.data.card import Card
from flnas.data.groups import age_group
from flnas.data.loader import IMAGE_EXTENSIONS, LoadResult, load_card

IMAGE_DIR = "ISIC_2019_Training_Input"
GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
METADATA = "ISIC_2019_Training_Metadata.csv"
#: every label column of the official ground truth, in its order
LABEL_COLUMNS = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
#: label columns that must be present (UNK may be left out)
REQUIRED_LABELS = LABEL_COLUMNS[:-1]
METADATA_COLUMNS = ("image", "age_approx", "lesion_id", "sex")
SUFFIX = "_downsampled"
NAME = "ISIC 2019"

__all__ = ["GROUND_TRUTH", "IMAGE_DIR", "IMAGE_EXTENSIONS", "LABEL_COLUMNS", "METADATA", "NAME", "Record",
           "base_name", "isic_card", "load_records"]


def isic_card(root: str | Path | None = None) -> Card:
    """The built-in card of the official ISIC 2019 layout (``root`` is not read: the card is the same for all)."""
    return Card.model_validate({
        "name": NAME,
        "images": IMAGE_DIR,
        "manifest": GROUND_TRUTH,
        "metadata": METADATA,
        "image_column": "image",
        "ignore_suffix": SUFFIX,
        "one_hot_columns": list(LABEL_COLUMNS),
        "optional_one_hot": ["UNK"],
        "sensitive": {
            "sex": {"column": "sex", "groups": {"male": ["male", "m"], "female": ["female", "f"]}, "strict": True},
            "age": {"column": "age_approx", "bins": [30, 65], "labels": ["young", "middle", "old"],
                    "valid_range": [0, 130]},
        },
        "group_column": "lesion_id",
    })


@dataclass
class Record:
    """One ISIC record with ISIC's field names; ``row`` is its ground-truth CSV row (header = row 1).

    It has the ``groups``/``unit``/``split`` of a :class:`flnas.data.loader.Record`, so the balanced subset
    and the split take either.
    """

    image: str
    path: Path
    label: str
    row: int
    sex: str | None = None
    age_approx: float = math.nan
    lesion_id: str | None = None
    site: str | None = None
    split = None  # ISIC has no given split

    @property
    def age_group(self) -> str | None:
        return age_group(self.age_approx)

    @property
    def groups(self) -> dict[str, str | None]:
        return {"sex": self.sex, "age": self.age_group}

    @property
    def unit(self) -> str | None:
        return self.lesion_id


def base_name(image: str) -> str:
    """The image name without the official ``_downsampled`` suffix (the join key)."""
    return image[: -len(SUFFIX)] if image.endswith(SUFFIX) else image


def load_records(root: str | Path, *, skip_bad: bool = False) -> LoadResult:
    """Read and check both CSVs and the image folder of ``root`` (ISIC layout); return the good records.

    Raises :class:`DataError` naming the file and row for a missing folder or CSV, a missing required
    column, a duplicate image, a label row that is not one-hot, an image listed but missing, an unknown
    sex value or an age that is not a number. With ``skip_bad`` such records are skipped and counted in
    ``LoadResult.skipped`` instead (a missing folder, CSV or column still raises).
    """
    loaded = load_card(isic_card(), root, skip_bad=skip_bad)
    loaded.records = [Record(image=r.image, path=r.path, label=r.label, row=r.row, sex=r.groups["sex"],
                             age_approx=r.values["age_approx"], lesion_id=r.unit) for r in loaded.records]
    return loaded

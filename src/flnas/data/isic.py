"""Read a dataset in the official ISIC 2019 layout into a list of :class:`Record`.

The layout::

    ROOT/ISIC_2019_Training_Input/<image>.jpg
    ROOT/ISIC_2019_Training_GroundTruth.csv   image + one-hot MEL,NV,BCC,AK,BKL,DF,VASC,SCC[,UNK]
    ROOT/ISIC_2019_Training_Metadata.csv      image, age_approx, anatom_site_general, lesion_id, sex

Rows may come in any order; the two CSVs are joined on the image name (the official ``_downsampled``
suffix is ignored for the join and the file lookup). Every problem a user can cause is a
:class:`~flnas.errors.DataError` naming the file and row ("row" counts lines as a spreadsheet does:
the header is row 1, the first record row 2). With ``skip_bad=True`` bad records are dropped instead
and counted per reason. Images are only checked for existence here; decoding (and so the check for
unreadable images) happens in :mod:`flnas.data.cache`.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from flnas.data.groups import age_group, sex_group
from flnas.errors import DataError

IMAGE_DIR = "ISIC_2019_Training_Input"
GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
METADATA = "ISIC_2019_Training_Metadata.csv"
#: every label column of the official ground truth, in its order
LABEL_COLUMNS = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
#: label columns that must be present (UNK may be left out)
REQUIRED_LABELS = LABEL_COLUMNS[:-1]
METADATA_COLUMNS = ("image", "age_approx", "lesion_id", "sex")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
SUFFIX = "_downsampled"

#: the reasons a record can be skipped with ``skip_bad`` (keys of LoadResult.skipped)
REASONS = ("duplicate", "not_one_hot", "missing_image", "unknown_sex", "bad_age", "unreadable_image")


@dataclass
class Record:
    """One labelled image with its demographics; ``row`` is its ground-truth CSV row (header = row 1)."""

    image: str
    path: Path
    label: str
    row: int
    sex: str | None = None
    age_approx: float = math.nan
    lesion_id: str | None = None
    site: str | None = None

    @property
    def age_group(self) -> str | None:
        return age_group(self.age_approx)


@dataclass
class LoadResult:
    """All good records, the fixed class list, and how many records were skipped per reason."""

    root: Path
    records: list[Record]
    classes: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    no_metadata: int = 0  # ground-truth images without a metadata row (demographics unknown)
    synthetic: bool = False


def base_name(image: str) -> str:
    """The image name without the official ``_downsampled`` suffix (the join key)."""
    return image[: -len(SUFFIX)] if image.endswith(SUFFIX) else image


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the official ISIC 2019 layout)")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: cannot be read as CSV ({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path.name}: required column(s) {', '.join(missing)} missing "
                        f"(found: {', '.join(frame.columns)})")
    return frame


def _image_index(image_dir: Path) -> dict[str, str]:
    """Map each image file's stem (and its stem without ``_downsampled``) to its file name."""
    index: dict[str, str] = {}
    with os.scandir(image_dir) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext in IMAGE_EXTENSIONS:
                index.setdefault(stem, entry.name)
                index.setdefault(base_name(stem), entry.name)
    return index


def _one_hot(values: list[str], labels: list[str]) -> str:
    """The single label set in a row; ValueError with the reason when the row is not one-hot."""
    numbers = []
    for label, text in zip(labels, values, strict=True):
        try:
            number = float(text) if text.strip() else math.nan
        except ValueError:
            raise ValueError(f"label row is not one-hot ({label} is {text!r}, not 0 or 1)") from None
        if number not in (0.0, 1.0):
            raise ValueError(f"label row is not one-hot ({label} is {text!r}, not 0 or 1)")
        numbers.append(number)
    set_labels = [label for label, number in zip(labels, numbers, strict=True) if number == 1.0]
    if len(set_labels) != 1:
        detail = ", ".join(set_labels) if set_labels else "none"
        raise ValueError(f"label row is not one-hot ({len(set_labels)} classes set: {detail})")
    return set_labels[0]


def _parse_age(text: str) -> float:
    if not text.strip():
        return math.nan
    age = float(text)  # ValueError for text that is not a number
    if not math.isfinite(age) or age < 0 or age > 130:
        raise ValueError(text)
    return age


class _Collector:
    """Raise at the first problem, or (skip_bad) count problems per reason."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: Counter[str] = Counter()

    def bad(self, reason: str, message: str) -> None:
        if not self.skip_bad:
            raise DataError(message)
        self.skipped[reason] += 1


def _read_metadata(path: Path) -> dict[str, tuple[int, dict[str, str]]]:
    frame = _read_csv(path, METADATA_COLUMNS)
    has_site = "anatom_site_general" in frame.columns
    rows: dict[str, tuple[int, dict[str, str]]] = {}
    images = frame["image"].tolist()
    ages, lesions, sexes = frame["age_approx"].tolist(), frame["lesion_id"].tolist(), frame["sex"].tolist()
    sites = frame["anatom_site_general"].tolist() if has_site else [""] * len(frame)
    for i, image in enumerate(images):
        key = base_name(image.strip())
        if key in rows:
            continue  # the ground truth decides which images exist; a repeated metadata row adds nothing
        rows[key] = (i + 2, {"age_approx": ages[i], "lesion_id": lesions[i], "sex": sexes[i],
                             "site": sites[i]})
    return rows


def load_records(root: str | Path, *, skip_bad: bool = False) -> LoadResult:
    """Read and check both CSVs and the image folder of ``root``; return the good records.

    Raises :class:`DataError` naming the file and row for a missing folder or CSV, a missing required
    column, a duplicate image, a label row that is not one-hot, an image listed but missing, an unknown
    sex value or an age that is not a number. With ``skip_bad`` such records are skipped and counted in
    ``LoadResult.skipped`` instead (a missing folder, CSV or column still raises).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    image_dir = root / IMAGE_DIR
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: image folder not found (expected {IMAGE_DIR}/ inside {root})")
    gt_path, meta_path = root / GROUND_TRUTH, root / METADATA
    truth = _read_csv(gt_path, ("image", *REQUIRED_LABELS))
    collect = _Collector(skip_bad)
    metadata = _read_metadata(meta_path)
    files = _image_index(image_dir)
    labels = [c for c in LABEL_COLUMNS if c in truth.columns]
    label_values = truth[labels].to_numpy().tolist()

    records: list[Record] = []
    seen: dict[str, int] = {}
    no_metadata = 0
    for i, raw_image in enumerate(truth["image"].tolist()):
        row, image = i + 2, raw_image.strip()
        where = f"{GROUND_TRUTH} row {row}"
        key = base_name(image)
        if not image:
            collect.bad("missing_image", f"{where}: empty image name")
            continue
        if key in seen:
            collect.bad("duplicate", f"{where}: image {image} is listed twice (first at row {seen[key]})")
            continue
        seen[key] = row
        try:
            label = _one_hot(label_values[i], labels)
        except ValueError as exc:
            collect.bad("not_one_hot", f"{where} (image {image}): {exc}")
            continue
        name = files.get(image) or files.get(key)
        if name is None:
            collect.bad("missing_image", f"{where}: image {image} is listed but {IMAGE_DIR}/{image}.jpg "
                                         "does not exist")
            continue
        record = Record(image=image, path=image_dir / name, label=label, row=row)
        meta = metadata.get(key)
        if meta is None:
            no_metadata += 1
        else:
            meta_row, values = meta
            meta_where = f"{METADATA} row {meta_row} (image {image})"
            try:
                record.sex = sex_group(values["sex"])
            except ValueError:
                collect.bad("unknown_sex", f"{meta_where}: unknown sex value {values['sex']!r} "
                                           "(expected male, female or empty)")
                continue
            try:
                record.age_approx = _parse_age(values["age_approx"])
            except ValueError:
                collect.bad("bad_age", f"{meta_where}: age_approx {values['age_approx']!r} is not an age "
                                       "in years (expected a number from 0 to 130, or empty)")
                continue
            record.lesion_id = values["lesion_id"].strip() or None
            record.site = values["site"].strip() or None
        records.append(record)

    if not records:
        why = " (all were skipped as bad)" if collect.skipped else ""
        raise DataError(f"{gt_path}: no usable records{why}")
    records.sort(key=lambda r: r.image)  # same data, same subset and split, whatever the row order
    present = {r.label for r in records}
    classes = [c for c in labels if c in present]
    return LoadResult(root=root, records=records, classes=classes, skipped=dict(collect.skipped),
                      no_metadata=no_metadata, synthetic=(root / "SYNTHETIC.txt").is_file())

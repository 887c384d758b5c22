"""Read any dataset a card describes into a list of :class:`Record` (labels, groups, split unit).

The manifest CSV (and the optional metadata CSV, joined on the image column) is read as text; each row
becomes a record with its class, the group it is in for every sensitive attribute and intersection (None
where it is in none), the raw sensitive values (written next to predictions for a later audit), its split
unit (``group_column``) and, with ``split_column``, its split. Every problem a user can cause is a
:class:`~flnas.errors.DataError` naming the file and row ("row" counts lines as a spreadsheet does: the header
is row 1). With ``skip_bad=True`` bad records are dropped and counted per reason instead. Images are only
checked for existence; decoding happens in :mod:`flnas.data.cache`.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from flnas.data.attributes import JOIN, bin_value, check_attributes, group_order, intersection
from flnas.data.card import SPLIT_VALUES, Attribute, Card, resolve_card
from flnas.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".bmp", ".tif", ".tiff", ".webp")
MARKER = "SYNTHETIC.txt"
SYNTHETIC_NAME = "synthetic (flnas)"


@dataclass
class Record:
    """One labelled image: its groups per attribute, raw sensitive values, split unit and given split."""

    image: str
    path: Path
    label: str
    row: int  # its manifest row (header = row 1)
    groups: dict[str, str | None] = field(default_factory=dict)  # attribute (and intersection) -> group
    values: dict[str, Any] = field(default_factory=dict)  # sensitive column -> group name or number (NaN)
    unit: str | None = None  # group_column value: all records of one unit go to one split
    split: str | None = None  # train / val / test from split_column


@dataclass
class LoadResult:
    """All good records, the fixed class list, the attributes, and what was skipped or dropped."""

    root: Path
    records: list[Any]
    classes: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    no_metadata: int = 0  # manifest images without a metadata row (attributes unknown)
    synthetic: bool = False
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    name: str = ""
    card: Card | None = None
    dropped_classes: dict[str, int] | None = None  # with card `classes`: rows of other classes, per class


class _Collector:
    """Raise at the first problem, or (skip_bad) count problems per reason."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: Counter[str] = Counter()

    def bad(self, reason: str, message: str) -> None:
        if not self.skip_bad:
            raise DataError(message)
        self.skipped[reason] += 1


class _Source:
    """Where the card came from, for messages: a card file, or the built-in ISIC card (None)."""

    def __init__(self, card: Card, card_file: Path | None) -> None:
        self.card, self.file = card, card_file

    def missing_columns(self, csv: Path, keys: dict[str, str], found: list[str]) -> DataError:
        if self.file is None:
            return DataError(f"{csv.name}: required column(s) {', '.join(keys.values())} missing "
                             f"(found: {', '.join(found)})")
        key, column = next(iter(keys.items()))
        return DataError(f"{self.file.name}: {key}: column {column!r} missing from {csv.name} "
                         f"(found: {', '.join(found)})")

    def not_found(self, path: Path, what: str) -> DataError:
        if self.file is None:
            return DataError(f"{path}: file not found (expected the official ISIC 2019 layout, or a dataset card: "
                             "see `flnas data card`)")
        return DataError(f"{path}: file not found (the card {self.file.name} names it as {what})")


def _read_csv(path: Path, source: _Source, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise source.not_found(path, what)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: cannot be read as CSV ({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _require(frame: pd.DataFrame, path: Path, keys: dict[str, str], source: _Source) -> None:
    missing = {k: c for k, c in keys.items() if c not in frame.columns}
    if missing:
        raise source.missing_columns(path, missing, list(frame.columns))


def _strip(image: str, suffix: str | None) -> str:
    return image[: -len(suffix)] if suffix and image.endswith(suffix) else image


def _image_index(image_dir: Path, suffix: str | None) -> dict[str, str]:
    """Each image file's name, stem (and stem without ``suffix``) -> its file name."""
    index: dict[str, str] = {}
    with os.scandir(image_dir) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext in IMAGE_EXTENSIONS:
                index.setdefault(stem, entry.name)
                index.setdefault(_strip(stem, suffix), entry.name)
                index.setdefault(entry.name, entry.name)
    return index


def _find_image(image_dir: Path, index: dict[str, str], image: str, key: str) -> Path | None:
    if "/" in image or os.sep in image:  # a relative path below the image folder
        for candidate in (image, *(image + ext for ext in IMAGE_EXTENSIONS)):
            if (image_dir / candidate).is_file():
                return image_dir / candidate
        return None
    name = index.get(image) or index.get(key)
    return image_dir / name if name is not None else None


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


def _number(text: str, spec: Attribute) -> float:
    """The value of a numeric attribute (NaN when empty); ValueError when not a number in range."""
    if not text.strip():
        return math.nan
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    if spec.valid_range is not None and not spec.valid_range[0] <= value <= spec.valid_range[1]:
        raise ValueError(text)
    return value


def _range_text(spec: Attribute) -> str:
    if spec.valid_range is None:
        return "a number (or empty)"
    lo, hi = (int(v) if float(v).is_integer() else v for v in spec.valid_range)
    return f"a number from {lo} to {hi} (or empty)"


class _Attributes:
    """Turns the raw text of every sensitive column into groups, raising or counting bad values."""

    def __init__(self, card: Card, source: _Source) -> None:
        self.card, self.source = card, source
        self.maps = {a: s.value_map() for a, s in card.sensitive.items()}
        self.found: dict[str, set[str]] = {a: set() for a, s in card.sensitive.items() if s.group_names() is None}

    def group(self, attribute: str, text: str, where: str, collect: _Collector) -> tuple[bool, str | None, Any]:
        """(ok, group, raw value) of one cell; ``ok`` False when the record was counted as bad."""
        spec = self.card.sensitive[attribute]
        if spec.numeric:
            try:
                value = _number(text, spec)
            except ValueError:
                collect.bad(f"bad_{attribute}", f"{where}: {spec.column} {text!r} is not {_range_text(spec)}")
                return False, None, None
            return True, bin_value(value, spec.bins or (), spec.labels or ()), value
        key = text.strip().casefold()
        if key in {m.strip().casefold() for m in spec.missing}:
            return True, None, None
        mapping = self.maps[attribute]
        if mapping is None:
            group = text.strip()
            self.found[attribute].add(group)
            return True, group, group
        group = mapping.get(key)
        if group is None and spec.strict:
            expected = ", ".join(spec.group_names() or ())
            collect.bad(f"unknown_{attribute}", f"{where}: unknown {attribute} value {text!r} "
                                                f"(expected {expected} or empty)")
            return False, None, None
        return True, group, group

    def attributes(self) -> dict[str, tuple[str, ...]]:
        """attribute -> groups: the card's attributes in card order, then the intersections."""
        out: dict[str, tuple[str, ...]] = {}
        where = self.source.file.name if self.source.file else "ISIC 2019 card"
        for attribute, spec in self.card.sensitive.items():
            names = spec.group_names()
            groups = tuple(names) if names is not None else group_order(self.found[attribute])
            if len(groups) < 2:
                shown = ", ".join(groups) or "none"
                raise DataError(f"{where}: sensitive.{attribute}: column {spec.column} has {len(groups)} group(s) "
                                f"({shown}); an attribute needs at least two groups")
            odd = [g for g in groups if JOIN in g or "|" in g]
            if odd:
                raise DataError(f"{where}: sensitive.{attribute}: value {odd[0]!r} holds {JOIN!r} or '|'; name the "
                                "groups with a groups: mapping")
            out[attribute] = groups
        try:
            check_attributes(out)  # values found in two columns would make one group name of two attributes
        except ValueError as exc:
            raise DataError(f"{where}: sensitive: {exc} (name them with a groups: mapping)") from None
        for combo in self.card.intersections:
            name, groups = intersection(out, combo)
            out[name] = groups
        return out


def load_dataset(source: str | Path, *, skip_bad: bool = False) -> LoadResult:
    """Read the dataset ``source`` names (a card file, a folder with ``flnas.yaml``, or the ISIC layout)."""
    card, root, card_file = resolve_card(source)
    return load_card(card, root, card_file=card_file, skip_bad=skip_bad)


def load_card(card: Card, root: str | Path, *, card_file: Path | None = None, skip_bad: bool = False) -> LoadResult:
    """Read and check the dataset ``card`` describes (paths relative to ``root``); return the good records.

    Raises :class:`DataError` naming the file and row for a missing folder or CSV, a missing column, a
    duplicate image, a bad label, an image listed but missing, a value a strict attribute does not know or a
    numeric value out of range. With ``skip_bad`` such records are skipped and counted instead (a missing
    folder, CSV or column still raises).
    """
    root = Path(root).expanduser()
    source = _Source(card, card_file)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    image_dir = root / card.images
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: image folder not found (expected {card.images}/ inside {root})")
    manifest_path = root / card.manifest
    manifest = _read_csv(manifest_path, source, "manifest")
    labels_keys = ({"label_column": card.label_column} if card.label_column is not None else
                   {f"one_hot_columns[{i}]": c for i, c in enumerate(card.one_hot_columns or ())
                    if c not in card.optional_one_hot})
    _require(manifest, manifest_path, {"image_column": card.image_column, **labels_keys}, source)
    keys = {f"sensitive.{a}.column": s.column for a, s in card.sensitive.items()}
    for key in ("group_column", "split_column"):
        if getattr(card, key) is not None:
            keys[key] = getattr(card, key)
    meta_rows: dict[str, tuple[int, dict[str, str]]] = {}
    meta_path = root / card.metadata if card.metadata else None
    in_meta: set[str] = set()
    if meta_path is not None:
        meta = _read_csv(meta_path, source, "metadata")
        elsewhere = {k: c for k, c in keys.items() if c not in manifest.columns}
        _require(meta, meta_path, {"image_column": card.image_column, **elsewhere}, source)
        in_meta = set(elsewhere.values())
        columns = {c: meta[c].tolist() for c in in_meta}
        for i, image in enumerate(meta[card.image_column].tolist()):
            key = _strip(image.strip(), card.ignore_suffix)
            if key not in meta_rows:  # the manifest decides which images exist; a repeated row adds nothing
                meta_rows[key] = (i + 2, {c: columns[c][i] for c in in_meta})
    else:
        _require(manifest, manifest_path, keys, source)
    return _records(card, root, source, manifest, manifest_path, meta_rows, meta_path, in_meta, skip_bad)


def _records(card: Card, root: Path, source: _Source, manifest: pd.DataFrame, manifest_path: Path,
             meta_rows: dict, meta_path: Path | None, in_meta: set[str], skip_bad: bool) -> LoadResult:
    """The records of a checked manifest (and metadata); see :func:`load_card`."""
    image_dir = root / card.images
    collect = _Collector(skip_bad)
    files = _image_index(image_dir, card.ignore_suffix)
    one_hot = [c for c in card.one_hot_columns or () if c in manifest.columns]
    label_values = manifest[one_hot].to_numpy().tolist() if one_hot else manifest[card.label_column].tolist()
    from_manifest = {c: manifest[c].tolist() for c in manifest.columns}
    groups = _Attributes(card, source)
    wanted = set(card.classes) if card.classes is not None else None
    dropped: Counter[str] = Counter()

    records: list[Record] = []
    seen: dict[str, int] = {}
    no_metadata = 0
    for i, raw_image in enumerate(from_manifest[card.image_column]):
        row, image = i + 2, raw_image.strip()
        where = f"{manifest_path.name} row {row}"
        key = _strip(image, card.ignore_suffix)
        if not image:
            collect.bad("missing_image", f"{where}: empty image name")
            continue
        if key in seen:
            collect.bad("duplicate", f"{where}: image {image} is listed twice (first at row {seen[key]})")
            continue
        seen[key] = row
        if one_hot:
            try:
                label = _one_hot(label_values[i], one_hot)
            except ValueError as exc:
                collect.bad("not_one_hot", f"{where} (image {image}): {exc}")
                continue
        else:
            label = label_values[i].strip()
            if not label:
                collect.bad("missing_label", f"{where} (image {image}): empty {card.label_column}")
                continue
        if wanted is not None and label not in wanted:
            dropped[label] += 1
            continue
        path = _find_image(image_dir, files, image, key)
        if path is None:
            shown = image if os.path.splitext(image)[1] in IMAGE_EXTENSIONS else f"{image}.jpg"
            collect.bad("missing_image", f"{where}: image {image} is listed but {card.images}/{shown} does not exist")
            continue
        record = Record(image=image, path=path, label=label, row=row)
        meta = meta_rows.get(key) if meta_path is not None else None
        if meta_path is not None and meta is None:
            no_metadata += 1
        if not _fill(record, card, groups, collect, i, where, from_manifest, meta, meta_path, in_meta):
            continue
        records.append(record)

    if not records:
        why = " (all were skipped as bad)" if collect.skipped else ""
        raise DataError(f"{manifest_path}: no usable records{why}")
    records.sort(key=lambda r: r.image)  # same data, same subset and split, whatever the row order
    attributes = groups.attributes()
    for combo in card.intersections:
        name = JOIN.join(combo)
        for r in records:
            parts = [r.groups[a] for a in combo]
            r.groups[name] = None if None in parts else JOIN.join(parts)  # type: ignore[arg-type]
    present = {r.label for r in records}
    if card.classes is not None:
        classes = list(card.classes)
    elif one_hot:
        classes = [c for c in one_hot if c in present]
    else:
        classes = sorted(present)
    synthetic = (root / MARKER).is_file()
    name = SYNTHETIC_NAME if synthetic else (card.name or root.name)
    return LoadResult(root=root, records=records, classes=classes, skipped=dict(collect.skipped),
                      no_metadata=no_metadata, synthetic=synthetic, attributes=attributes, name=name, card=card,
                      dropped_classes=dict(sorted(dropped.items())) if card.classes is not None else None)


def _fill(record: Record, card: Card, groups: _Attributes, collect: _Collector, i: int, where: str,
          manifest: dict[str, list[str]], meta: tuple[int, dict[str, str]] | None, meta_path: Path | None,
          in_meta: set[str]) -> bool:
    """Set the record's groups, values, unit and split; False when it was counted as bad."""
    def cell(column: str) -> tuple[str | None, str]:
        if column in in_meta:
            if meta is None:
                return None, where
            return meta[1][column], f"{meta_path.name} row {meta[0]} (image {record.image})"  # type: ignore[union-attr]
        return manifest[column][i], f"{where} (image {record.image})"

    for attribute, spec in card.sensitive.items():
        text, at = cell(spec.column)
        if text is None:
            record.groups[attribute] = None
            record.values[spec.column] = math.nan if spec.numeric else None
            continue
        ok, group, value = groups.group(attribute, text, at, collect)
        if not ok:
            return False
        record.groups[attribute] = group
        record.values[spec.column] = math.nan if value is None and spec.numeric else value
    if card.group_column is not None:
        text, _ = cell(card.group_column)
        record.unit = (text or "").strip() or None
    if card.split_column is not None:
        text, at = cell(card.split_column)
        split = SPLIT_VALUES.get((text or "").strip().casefold())
        if split is None:
            collect.bad("bad_split", f"{at}: {card.split_column} {text or ''!r} is not train, val or test")
            return False
        record.split = split
    return True

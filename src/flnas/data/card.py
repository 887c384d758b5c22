"""Dataset cards: a small YAML or JSON file that says how to read an image set and its sensitive attributes.

A card names the image folder and a manifest CSV (optionally a second ``metadata`` CSV joined on the image
column), where the labels are (one column of class names, or one-hot columns), and each sensitive attribute:
categorical (each value a group, a list of groups, or a ``{group: [values]}`` mapping) or numeric (``bins``
and ``labels``). ``intersections`` add attributes whose groups are combinations (``sex/age`` ->
``female/old``). The card is checked here, before any data is read, with pydantic; every problem is one
sentence naming the key (``card.yaml: sensitive.age.bins: edges must increase (30, 20)``). Columns are
checked against the CSVs when the data is read (:mod:`flnas.data.loader`). docs/data.md is the reference.

The official ISIC 2019 layout is a built-in card (:func:`flnas.data.isic.isic_card`);
:func:`resolve_card` picks the card for a ``--data`` argument.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from flnas.data.attributes import JOIN as SEPARATOR
from flnas.errors import DataError

#: the file names a folder given to ``--data`` may hold its card in
CARD_NAMES = ("flnas.yaml", "flnas.yml", "flnas.json")
#: values of a categorical attribute that mean "unknown" unless the card says otherwise (compared case-blind)
MISSING = ("", "nan", "unknown", "na", "n/a")
#: what a split column may say (case-blind) and the split it means
SPLIT_VALUES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "test": "test", "testing": "test"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Attribute(_Strict):
    """One sensitive attribute read from one column: categorical, or numeric when ``bins`` is given."""

    column: str
    #: categorical: a list of groups (each matches the value of the same name) or {group: [values]};
    #: omitted: every value found in the column is a group
    groups: list[str] | dict[str, list[str]] | None = None
    #: categorical: a value outside ``groups`` is a bad record (else it is in no group)
    strict: bool = False
    #: categorical: values that mean "unknown" (in no group)
    missing: list[str] = list(MISSING)
    #: numeric: increasing edges e1 < ... < en; the groups are x < e1, e1 <= x < e2, ..., e(n-1) <= x <= en,
    #: x > en (ISIC age [30, 65]: young < 30, middle 30 to 65 inclusive, old > 65)
    bins: list[float] | None = None
    labels: list[str] | None = None
    #: numeric: the values that make sense; others (or text that is not a number) are bad records
    valid_range: tuple[float, float] | None = None

    @field_validator("column")
    @classmethod
    def _column(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the column name is empty")
        return value.strip()

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str] | dict[str, list[str]] | None) -> list[str] | dict[str, list[str]] | None:
        if value is None:
            return value
        if isinstance(value, dict):
            seen: dict[str, str] = {}
            for group, values in value.items():
                for v in values:
                    key = v.strip().casefold()
                    if key in seen and seen[key] != group:
                        raise ValueError(f"value {v!r} is mapped to both {seen[key]} and {group}")
                    seen[key] = group
        _check_groups(list(value))
        return value

    @field_validator("bins")
    @classmethod
    def _bins(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            if not value:
                raise ValueError("bins needs at least one edge (one edge makes two groups)")
            if any(b <= a for a, b in zip(value, value[1:], strict=False)):
                raise ValueError(f"edges must increase ({', '.join(_num(b) for b in value)})")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        bins = info.data.get("bins")
        if value is not None and bins is not None and len(value) != len(bins) + 1:
            raise ValueError(f"{len(bins)} edges make {len(bins) + 1} groups, so labels needs "
                             f"{len(bins) + 1} names, not {len(value)}")
        if value is not None:
            _check_groups(value)
        return value

    @field_validator("valid_range")
    @classmethod
    def _range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] >= value[1]:
            raise ValueError(f"must be [low, high] with low < high, not [{_num(value[0])}, {_num(value[1])}]")
        return value

    @model_validator(mode="after")
    def _kind(self) -> Attribute:
        if self.bins is not None:
            if self.groups is not None:
                raise ValueError("give either bins (numeric) or groups (categorical), not both")
            if self.labels is None:
                raise ValueError("bins need labels (one more label than edges)")
        elif self.labels is not None or self.valid_range is not None:
            raise ValueError("labels and valid_range belong to a numeric attribute (one with bins)")
        return self

    @property
    def numeric(self) -> bool:
        return self.bins is not None

    def group_names(self) -> list[str] | None:
        """The groups in order, or None when they are the values found in the data."""
        if self.bins is not None:
            return list(self.labels or ())
        if self.groups is None:
            return None
        return list(self.groups) if isinstance(self.groups, dict) else list(self.groups)

    def value_map(self) -> dict[str, str] | None:
        """casefolded value -> group for a categorical attribute with groups (None: each value its group)."""
        if self.groups is None or self.bins is not None:
            return None
        if isinstance(self.groups, list):
            return {g.strip().casefold(): g for g in self.groups}
        return {v.strip().casefold(): g for g, values in self.groups.items() for v in values}


class Card(_Strict):
    """A dataset card (docs/data.md). Paths are relative to the card's folder."""

    name: str | None = None
    images: str
    manifest: str
    #: a second CSV joined to the manifest on ``image_column`` (the ISIC way: labels in one, metadata in the other)
    metadata: str | None = None
    image_column: str
    #: a suffix ignored when joining the CSVs and finding the image file (ISIC: "_downsampled")
    ignore_suffix: str | None = None
    label_column: str | None = None
    one_hot_columns: list[str] | None = None
    #: one-hot columns that may be left out of the manifest (ISIC: UNK)
    optional_one_hot: list[str] = []
    classes: list[str] | None = None
    sensitive: dict[str, Attribute]
    intersections: list[list[str]] = []
    group_column: str | None = None
    split_column: str | None = None
    balance_on: list[str] | None = None

    @model_validator(mode="after")
    def _whole(self) -> Card:
        if (self.label_column is None) == (self.one_hot_columns is None):
            raise ValueError("give exactly one of label_column (one column of class names) or one_hot_columns")
        if self.one_hot_columns is not None and len(self.one_hot_columns) < 2:
            raise ValueError("one_hot_columns needs at least two columns")
        for key, values in (("one_hot_columns", self.one_hot_columns), ("classes", self.classes)):
            if values is not None and len(set(values)) != len(values):
                raise ValueError(f"{key} lists {_first_repeat(values)!r} twice")
        if self.classes is not None:
            if len(self.classes) < 2:
                raise ValueError("classes needs at least two classes")
            if self.one_hot_columns is not None:
                extra = [c for c in self.classes if c not in self.one_hot_columns]
                if extra:
                    raise ValueError(f"classes: {extra[0]} is not one of one_hot_columns")
        if not self.sensitive:
            raise ValueError("sensitive needs at least one attribute")
        _check_names(list(self.sensitive), "attribute")
        owner: dict[str, str] = {}
        for attribute, spec in self.sensitive.items():
            for group in spec.group_names() or ():
                if group in owner:
                    raise ValueError(f"sensitive: group {group!r} is in both {owner[group]} and {attribute}; "
                                     "group names must be unique across attributes (rename one)")
                owner[group] = attribute
        seen: set[tuple[str, ...]] = set()
        for i, combo in enumerate(self.intersections):
            where = f"intersections[{i}]"
            unknown = [a for a in combo if a not in self.sensitive]
            if unknown:
                raise ValueError(f"{where}: {unknown[0]!r} is not an attribute of sensitive")
            if len(combo) < 2 or len(set(combo)) != len(combo):
                raise ValueError(f"{where}: an intersection needs two or more different attributes")
            if tuple(combo) in seen:
                raise ValueError(f"{where}: {SEPARATOR.join(combo)} is listed twice")
            seen.add(tuple(combo))
        for name in self.balance_on or ():
            if name not in self.sensitive:
                raise ValueError(f"balance_on: {name!r} is not an attribute of sensitive")
        if self.balance_on is not None and not self.balance_on:
            raise ValueError("balance_on needs at least one attribute (omit it to balance on all)")
        return self

    @property
    def balanced(self) -> list[str]:
        """The attributes the balanced subset balances (``balance_on``, default all of ``sensitive``)."""
        return list(self.balance_on) if self.balance_on is not None else list(self.sensitive)

    def dump(self) -> dict[str, Any]:
        """The card as plain data, without keys left at their defaults (what ``flnas data card`` prints)."""
        return _whole_numbers(self.model_dump(mode="json", exclude_defaults=True))


def _whole_numbers(data: Any) -> Any:
    """``30.0`` -> ``30`` throughout (bins read as floats print as the user wrote them)."""
    if isinstance(data, dict):
        return {k: _whole_numbers(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_whole_numbers(v) for v in data]
    return int(data) if isinstance(data, float) and data.is_integer() else data


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _first_repeat(values: list[str]) -> str:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return ""


def _check_groups(names: list[str]) -> None:
    _check_names(names, "group")
    if len(names) < 2:
        raise ValueError(f"an attribute needs at least two groups, this one has {len(names)}")


def _check_names(names: list[str], what: str) -> None:
    for name in names:
        if not name.strip() or SEPARATOR in name or "|" in name:
            raise ValueError(f"{what} name {name!r} must be non-empty and hold no {SEPARATOR!r} or '|'")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} {_first_repeat(names)!r} is listed twice")


def _describe(error: dict) -> str:
    # pydantic names the member of a union it tried ("list[str]"); the user's key path is the rest
    loc = ".".join(str(p) for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    kind, msg = error["type"], error["msg"]
    if kind == "missing":
        text = "required key is missing"
    elif kind == "extra_forbidden":
        text = "unknown key (see docs/data.md for the keys a card may have)"
    else:
        text = msg.removeprefix("Value error, ").replace("instance of Attribute", "mapping (column: ...)")
    return f"{loc}: {text}" if loc else text


def card_error(source: str, exc: ValidationError) -> DataError:
    """One sentence naming the key of each problem (the first three), e.g. ``card.yaml: sensitive.age.bins: ...``."""
    errors = list({_describe(e): e for e in exc.errors()})  # a union's members can say the same thing
    text = "; ".join(errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return DataError(f"{source}: {text}{more}")


def parse_card(data: Any, source: str) -> Card:
    """A :class:`Card` from parsed YAML/JSON data; DataError naming the key of the first problems."""
    if not isinstance(data, dict):
        raise DataError(f"{source}: a card is a mapping of keys (images, manifest, ...), not {type(data).__name__}")
    try:
        return Card.model_validate(data)
    except ValidationError as exc:
        raise card_error(source, exc) from None


def read_card(path: str | Path) -> Card:
    """Read and check the card at ``path`` (YAML, or JSON when it ends in .json)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the dataset card ({exc.strerror or exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path.name}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} "
                        f"({first})") from None
    return parse_card(data, path.name)


def card_yaml(card: Card, header: str = "") -> str:
    """The card as YAML in key order, with ``header`` as a leading comment."""
    body = yaml.safe_dump(card.dump(), sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + body


def find_card(root: Path) -> Path | None:
    """The card file a folder holds (``flnas.yaml``, ``flnas.yml`` or ``flnas.json``), or None."""
    for name in CARD_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def resolve_card(source: str | Path) -> tuple[Card, Path, Path | None]:
    """(card, root folder, card file or None for the built-in ISIC card) for a ``--data`` argument.

    A YAML/JSON file is a card; a folder holding ``flnas.yaml`` uses it; any other folder is read with the
    built-in ISIC 2019 card (whose loader names what is missing when the folder is not in that layout).
    """
    from flnas.data.isic import isic_card

    path = Path(source).expanduser()
    if path.is_file():
        return read_card(path), path.parent, path
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        raise DataError(f"{path}: dataset card not found")
    found = find_card(path) if path.is_dir() else None
    if found is not None:
        return read_card(found), path, found
    return isic_card(path), path, None

"""Sensitive attributes as data: attribute -> ordered group names, per-record groups, intersections, bins.

A dataset names its sensitive attributes and their groups, e.g. ISIC 2019's
``{"sex": ("male", "female"), "age": ("young", "middle", "old")}``; each record is in at most one group of
each attribute (``None``: in none, e.g. unknown). Everything downstream (the fairness metrics, their
intervals, the prompt, the report) takes these as arguments, so a dataset with skin type I-VI or an
anatomical site works the same way.

- An **intersection** of attributes ``a`` and ``b`` is one more attribute ``"a/b"`` whose groups are the
  combinations ``"ga/gb"`` in product order (``"sex/age"``: ``male/young``, ``male/middle``, ...,
  ``female/old``); a record is in one when it is in a group of each attribute.
- **Bins** turn a numeric column into groups with the edge rules of the ISIC age groups: for edges
  ``e1 < ... < en`` the groups are ``x < e1``, ``e1 <= x < e2``, ..., ``e(n-1) <= x <= en``, ``x > en``
  (so ``[30, 65]`` gives young < 30, middle 30-65 inclusive, old > 65; a single edge ``e`` gives
  ``x <= e`` and ``x > e``). Default labels ``"<30"``, ``"30-65"``, ``">65"`` (``"<=40"``, ``">40"``).

Group names must be unique across attributes (the metrics key groups by name) and every attribute needs at
least two groups (a fairness gap needs two groups to compare); :func:`check_attributes` says which is not.

Groups **discovered** from a column (no groups given) are put in order by :func:`group_order`, the one
ordering every reader uses (dataset cards, `flnas metrics --sensitive`, the metric functions): numbers by
value (``1, 2, 10``), anything else naturally (``Type 2`` before ``Type 10``), never as plain text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np

#: attribute -> its groups in report order
Attributes = dict[str, tuple[str, ...]]

#: joins the attributes of an intersection ("sex/age") and their groups ("female/old")
JOIN = "/"


def is_missing(value: Any) -> bool:
    """None, NaN or an empty/blank string: a record in no group of the attribute."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS = re.compile(r"([0-9]+)")


def natural_key(text: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key that compares runs of digits as numbers (``Type 2`` < ``Type 10``), the rest as text.

    The parts alternate text, number, text, ... so two keys always compare like with like; the text itself
    breaks ties (``"01"`` and ``"1"``), so the order is total and the same on every machine.
    """
    parts = _DIGITS.split(text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), text


def group_order(values: Iterable[Any]) -> tuple[str, ...]:
    """The distinct group names found in a column, in the order people read them (tables, plots, prompt).

    Names are the values as written (``"1"`` stays ``"1"``, ``"2.5"`` stays ``"2.5"``). When every name is
    a number the groups go by value (``1, 2, 10``; ``-1`` before ``0.5``); otherwise naturally, digit runs
    as numbers (:func:`natural_key`). Groups a dataset names itself (a card's ``groups:``, bins) keep their
    own order and never come here.
    """
    names = {str(v) for v in values}
    if names and all(_NUMBER.fullmatch(n.strip()) for n in names):
        return tuple(sorted(names, key=lambda n: (float(n), natural_key(n))))
    return tuple(sorted(names, key=natural_key))


def check_attributes(attributes: Mapping[str, Sequence[str]]) -> Attributes:
    """``attributes`` as a dict of tuples; ValueError (one sentence) for a one-group attribute or a repeated name."""
    out: Attributes = {}
    owner: dict[str, str] = {}
    for attribute, groups in attributes.items():
        names = tuple(str(g) for g in groups)
        if len(names) < 2:
            raise ValueError(
                f"attribute {attribute!r} has {len(names)} group{'' if len(names) == 1 else 's'} "
                f"({', '.join(names) or 'none'}); a fairness comparison needs at least two"
            )
        for name in names:
            if name in owner:
                where = "twice" if owner[name] == attribute else f"in both {owner[name]!r} and {attribute!r}"
                raise ValueError(f"group {name!r} appears {where}; group names must be unique across attributes")
            owner[name] = attribute
        out[str(attribute)] = names
    return out


def all_groups(attributes: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Every group of every attribute, in attribute order (the order of the per-group tables)."""
    return tuple(g for groups in attributes.values() for g in groups)


def group_pairs(attributes: Mapping[str, Sequence[str]]) -> tuple[tuple[str, str], ...]:
    """The unordered pairs of groups within each attribute (EODD/EOPP), in report order."""
    return tuple(
        (groups[i], groups[j]) for groups in attributes.values() for i in range(len(groups))
        for j in range(i + 1, len(groups))
    )


def intersection(attributes: Mapping[str, Sequence[str]], names: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The attribute ``"a/b"`` and its groups ``"ga/gb"`` (product order) for the attributes ``names``."""
    missing = [n for n in names if n not in attributes]
    if missing:
        raise ValueError(
            f"cannot intersect {', '.join(map(repr, missing))}: not an attribute (have {', '.join(attributes)})"
        )
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"an intersection needs two or more different attributes (got {', '.join(names)})")
    groups = tuple(JOIN.join(combo) for combo in product(*(attributes[n] for n in names)))
    return JOIN.join(names), groups


def intersect_values(columns: Sequence[Any]) -> np.ndarray:
    """Per record ``"ga/gb"`` of the per-attribute group arrays ``columns``; None where any is missing."""
    arrays = [np.asarray(c, dtype=object).reshape(-1) for c in columns]
    rows = zip(*arrays, strict=True)
    values = [None if any(is_missing(v) for v in row) else JOIN.join(map(str, row)) for row in rows]
    return np.array(values, dtype=object)


def add_intersections(
    attributes: Mapping[str, Sequence[str]],
    groups: Mapping[str, Any],
    intersections: Sequence[Sequence[str]],
) -> tuple[Attributes, dict[str, np.ndarray]]:
    """``attributes`` and per-record ``groups`` with each intersection appended as one more attribute."""
    attrs: Attributes = {a: tuple(g) for a, g in attributes.items()}
    out = {a: np.asarray(v, dtype=object) for a, v in groups.items()}
    for names in intersections:
        name, combos = intersection(attrs, list(names))
        if name in attrs:
            continue
        attrs[name] = combos
        n = len(next(iter(out.values()))) if out else 0
        out[name] = intersect_values([out.get(a, np.full(n, None, dtype=object)) for a in names])
    return check_attributes(attrs), out


# --------------------------------------------------------------------------------------------------
# numeric columns into groups


def _edge_text(edge: float) -> str:
    return str(int(edge)) if float(edge).is_integer() else f"{edge:g}"


def check_edges(edges: Sequence[float], what: str = "bins") -> tuple[float, ...]:
    """The edges as floats; ValueError when they are not finite and strictly increasing."""
    values = tuple(float(e) for e in edges)
    if not values:
        raise ValueError(f"{what}: give at least one edge")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what}: edges must be finite numbers (got {', '.join(map(_edge_text, values))})")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{what}: edges must increase strictly (got {', '.join(map(_edge_text, values))})")
    return values


def bin_labels(edges: Sequence[float]) -> tuple[str, ...]:
    """Default group names of :func:`bin_value`: ``"<30"``, ``"30-65"``, ``">65"`` for edges 30, 65.

    The last edge belongs to the bin below it, so a single edge 40 gives ``"<=40"`` and ``">40"``.
    """
    e = [_edge_text(x) for x in edges]
    if len(e) == 1:
        return (f"<={e[0]}", f">{e[0]}")
    return (f"<{e[0]}", *(f"{a}-{b}" for a, b in zip(e, e[1:], strict=False)), f">{e[-1]}")


def bin_value(value: float, edges: Sequence[float], labels: Sequence[str]) -> str | None:
    """The group of ``value`` under the edge rules in the module docstring; None when it is missing/NaN."""
    if is_missing(value):
        return None
    x = float(value)
    if math.isnan(x):
        return None
    if x < edges[0]:
        return labels[0]
    for i in range(1, len(edges)):
        if x < edges[i]:
            return labels[i]
    return labels[len(edges) - 1] if x == edges[-1] else labels[len(edges)]


# --------------------------------------------------------------------------------------------------
# a table column as an attribute


@dataclass(frozen=True)
class SensitiveColumn:
    """How one column of a table (a predictions CSV, a manifest) becomes one attribute's groups.

    Categorical by default: each distinct non-empty value (stripped) is a group, in :func:`group_order`.
    With ``edges`` the column is numeric and binned (:func:`bin_value`; groups ``labels`` or
    :func:`bin_labels`). With ``convert`` a dataset's own rule maps a value to one of ``groups`` (ISIC:
    ``M`` is ``male``).
    """

    column: str
    attribute: str = ""  # the attribute's name; default the column's
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # fixed groups (with ``convert``); empty: the values seen
    convert: Callable[[Any], str | None] | None = None  # value -> group or None; ValueError for a bad value
    #: the end of the sentence "column C has ..." for a value that is not valid ({shown}: the value, quoted)
    problem: str = "{shown}, not a group"

    @property
    def name(self) -> str:
        return self.attribute or self.column

    def fixed_groups(self) -> tuple[str, ...]:
        """The groups known before reading the values (bins, or ``groups``); empty for a categorical column."""
        if self.edges:
            return self.labels or bin_labels(self.edges)
        return self.groups

    def group_of(self, value: Any) -> str | None:
        """The group of one cell; None when it is empty. ValueError when the cell is no valid value."""
        if self.convert is not None:
            return self.convert(value)
        if is_missing(value):
            return None
        if self.edges:
            number = float(value)
            if math.isinf(number):
                raise ValueError(value)
            return bin_value(number, self.edges, self.fixed_groups())
        return str(value).strip()

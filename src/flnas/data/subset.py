"""The paper's subset: N records at random with balanced groups, then a 70/20/10 split.

Balanced subset (:func:`balanced_subset`). Records whose groups are known for every balanced attribute
(the card's ``balance_on``, default all; ISIC: sex and age) fall into the cells of their product (ISIC: six
cells sex x age group). Each cell is shuffled with the seed. Records are then taken one at a time from the
cell whose groups are least represented so far, i.e. the cell minimising the sum over the balanced
attributes of ``count[group] / (N / number of groups)`` (ISIC: ``count[sex] / (N/2) + count[age] / (N/3)``;
ties: the cell taken from least, then the fixed cell order). A group that runs out simply stops being
chosen, so its share goes to the others while the remaining groups stay as even as the data allows (e.g.
when only 239 records are young, all 239 are taken and the middle and old groups share the rest, with male
and female kept equal). Only when all cells are exhausted are records with a missing group added, at
random. The report gives the achieved counts per group and cell, and a sentence saying how close to
balance it got.

Split (:func:`split_records`). Records of one unit (the card's ``group_column``; ISIC: ``lesion_id``) form a
unit (a record without one is its own unit), labelled by its most common class. Per class, units are
shuffled with the seed, ordered largest first, and each goes to the split (train, val, test) furthest below
its 70/20/10 share of that class's images, so every class is split in proportion and no unit spans two
splits. A card with a ``split_column`` keeps the user's own split instead.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

from flnas.data.attributes import natural_key
from flnas.data.groups import ATTRIBUTES
from flnas.errors import DataError

SPLITS = ("train", "val", "test")
FRACTIONS = (0.7, 0.2, 0.1)


@dataclass
class SubsetResult:
    """The chosen records (in input order) and the report printed by ``flnas data summary``."""

    records: list[Any]
    report: dict = field(default_factory=dict)


def group_counts(records: Sequence[Any], attributes: dict[str, Sequence[str]] | None = None) -> dict[str, int]:
    """Records per group of every attribute, in attribute then group order; unknowns count in none.

    ``attributes`` defaults to ISIC's (male, female, young, middle, old); group names are unique across
    attributes, so one flat mapping holds them all.
    """
    attributes = ATTRIBUTES if attributes is None else attributes
    out: dict[str, int] = {}
    for attribute, groups in attributes.items():
        counts = Counter(r.groups.get(attribute) for r in records)
        out.update({g: counts.get(g, 0) for g in groups})
    return out


def cell_counts(records: Sequence[Any], balance_on: Sequence[str] = ("sex", "age")) -> dict[str, int]:
    """Records per cell of the balanced attributes (``male|young``), unknowns written as ``unknown``."""
    counts = Counter("|".join(r.groups.get(a) or "unknown" for a in balance_on) for r in records)
    return {cell: counts[cell] for cell in sorted(counts, key=natural_key)}  # "2|old" before "10|old"


def _balance(counts: dict[str, int], available: dict[str, int], total: int,
             attributes: dict[str, Sequence[str]]) -> tuple[dict, str]:
    """Per attribute: target, min, max, min/max ratio; and a sentence on how close to balance it is."""
    balance: dict[str, dict] = {}
    sentences: list[str] = []
    for attribute, groups in attributes.items():
        values = [counts[g] for g in groups]
        lo, hi = min(values), max(values)
        balance[attribute] = {"target": round(total / len(groups), 1), "min": lo, "max": hi,
                              "ratio": round(lo / hi, 3) if hi else None}
        text = ", ".join(f"{g} {counts[g]}" for g in groups)
        if hi == 0:
            sentences.append(f"{attribute} unknown for every record (no balance possible)")
        elif hi - lo <= 1:
            sentences.append(f"{attribute} balanced ({text})")
        else:
            short = [f"{g} has only {available[g]}" for g in groups
                     if counts[g] == available[g] and counts[g] < total / len(groups)]
            why = f"; {' and '.join(short)} (all taken)" if short else ""
            sentences.append(f"{attribute} as close as the data allows ({text}; min/max {lo / hi:.2f}{why})")
    return balance, "; ".join(sentences)


def check_subset_size(n: int | None) -> None:
    """DataError unless ``n`` is None (no subset) or a positive number of records."""
    if n is not None and n <= 0:
        raise DataError(f"--subset must be a positive number of records, not {n}")


def balanced_subset(records: Sequence[Any], n: int, *, seed: int = 0,
                    attributes: dict[str, Sequence[str]] | None = None,
                    balance_on: Sequence[str] | None = None) -> SubsetResult:
    """Pick ``n`` records at random (seeded) with the groups of ``balance_on`` as equal as possible.

    ``attributes`` (attribute -> groups; default ISIC's sex and age) are counted in the report;
    ``balance_on`` (default: every attribute that is not an intersection) are balanced: each record with a
    group in all of them falls in one cell of their product.
    """
    check_subset_size(n)
    attributes = dict(ATTRIBUTES) if attributes is None else dict(attributes)
    on = [a for a in attributes if "/" not in a] if balance_on is None else list(balance_on)
    cells = list(product(*(attributes[a] for a in on)))
    rng = np.random.default_rng(seed)
    pools: dict[tuple[str, ...], list[int]] = {cell: [] for cell in cells}
    rest: list[int] = []
    for i, r in enumerate(records):
        cell = tuple(r.groups.get(a) for a in on)
        (pools[cell] if cell in pools else rest).append(i)
    for cell in cells:
        pools[cell] = [pools[cell][j] for j in rng.permutation(len(pools[cell]))]
    rest = [rest[j] for j in rng.permutation(len(rest))]

    want = min(n, len(records))
    count = [dict.fromkeys(attributes[a], 0) for a in on]
    weight = [len(attributes[a]) / want for a in on] if want else [0.0] * len(on)
    taken = dict.fromkeys(cells, 0)
    chosen: list[int] = []
    while len(chosen) < want:
        open_cells = [c for c in cells if taken[c] < len(pools[c])]
        if not open_cells:
            break
        cell = min(open_cells, key=lambda c: (sum(count[k][g] * weight[k] for k, g in enumerate(c)), taken[c]))
        chosen.append(pools[cell][taken[cell]])
        taken[cell] += 1
        for k, g in enumerate(cell):
            count[k][g] += 1
    chosen.extend(rest[: want - len(chosen)])
    chosen.sort()

    picked = [records[i] for i in chosen]
    counts, available = group_counts(picked, attributes), group_counts(records, attributes)
    balance, note = _balance(counts, available, len(picked), {a: attributes[a] for a in on})
    if len(picked) < n:
        note = f"only {len(picked)} records available, all taken; " + note
    missing = sum(1 for r in picked if any(r.groups.get(a) is None for a in on))
    if missing:
        note += f"; {missing} records with unknown {' or '.join(on)} were added to reach the size"
    report = {
        "requested": n,
        "achieved": len(picked),
        "available": len(records),
        "seed": seed,
        "group_counts": counts,
        "available_group_counts": available,
        "cell_counts": cell_counts(picked, on),
        "balance": balance,
        "note": note,
    }
    return SubsetResult(records=picked, report=report)


def split_records(
    records: Sequence[Any], *, seed: int = 0, fractions: Sequence[float] = FRACTIONS, given: bool = False
) -> dict[str, list[int]]:
    """Indices of ``records`` per split, stratified by class, all records of one unit in one split.

    A record's unit is its ``unit`` (the card's ``group_column``; ISIC: the lesion), else itself. With
    ``given`` each record goes to its own ``split`` (the card's ``split_column``) instead.
    """
    if given:
        return {name: [i for i, r in enumerate(records) if r.split == name] for name in SPLITS}
    units: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        units[f"lesion:{r.unit}" if r.unit else f"image:{r.image}"].append(i)
    by_class: dict[str, list[str]] = defaultdict(list)
    for key in sorted(units):
        labels = Counter(records[i].label for i in units[key])
        top = max(labels.values())
        label = min(lab for lab, c in labels.items() if c == top)
        by_class[label].append(key)

    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {name: [] for name in SPLITS}
    for label in sorted(by_class):
        keys = [by_class[label][j] for j in rng.permutation(len(by_class[label]))]
        keys.sort(key=lambda k: -len(units[k]))  # stable: shuffled order within equal sizes
        total = sum(len(units[k]) for k in keys)
        targets = [f * total for f in fractions]
        filled = [0] * len(SPLITS)
        for key in keys:
            j = max(range(len(SPLITS)), key=lambda s: (targets[s] - filled[s], -s))
            filled[j] += len(units[key])
            out[SPLITS[j]].extend(units[key])
    return {name: sorted(idx) for name, idx in out.items()}

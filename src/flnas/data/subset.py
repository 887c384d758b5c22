"""The paper's subset: N records at random with balanced demographic groups, then a 70/20/10 split.

Balanced subset (:func:`balanced_subset`). Records whose sex and age group are both known fall into the
six cells sex x age group. Each cell is shuffled with the seed. Records are then taken one at a time
from the cell whose groups are least represented so far, i.e. the cell minimising
``count[sex] / (N/2) + count[age] / (N/3)`` (ties: the cell taken from least, then the fixed cell order).
A group that runs out simply stops being chosen, so its share goes to the others while the remaining
groups stay as even as the data allows (e.g. when only 239 records are young, all 239 are taken and the
middle and old groups share the rest, with male and female kept equal). Only when all six cells are
exhausted are records with missing sex or age added, at random. The report gives the achieved counts
per group and cell, and a sentence saying how close to balance it got.

Split (:func:`split_records`). Images of one ``lesion_id`` form a unit (a record without one is its own
unit), labelled by its most common class. Per class, units are shuffled with the seed, ordered largest
first, and each goes to the split (train, val, test) furthest below its 70/20/10 share of that class's
images, so every class is split in proportion and no lesion spans two splits.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from flnas.data.groups import AGE_GROUPS, ATTRIBUTES, SEX_GROUPS
from flnas.data.isic import Record
from flnas.errors import DataError

SPLITS = ("train", "val", "test")
FRACTIONS = (0.7, 0.2, 0.1)
CELLS = [(s, a) for s in SEX_GROUPS for a in AGE_GROUPS]


@dataclass
class SubsetResult:
    """The chosen records (in input order) and the report printed by ``flnas data summary``."""

    records: list[Record]
    report: dict = field(default_factory=dict)


def group_counts(records: Sequence[Record]) -> dict[str, int]:
    """Records per demographic group (male, female, young, middle, old); unknowns count in none."""
    sexes = Counter(r.sex for r in records)
    ages = Counter(r.age_group for r in records)
    return {**{g: sexes.get(g, 0) for g in SEX_GROUPS}, **{g: ages.get(g, 0) for g in AGE_GROUPS}}


def cell_counts(records: Sequence[Record]) -> dict[str, int]:
    """Records per ``sex|age`` cell, unknowns written as ``unknown``."""
    counts = Counter(f"{r.sex or 'unknown'}|{r.age_group or 'unknown'}" for r in records)
    return dict(sorted(counts.items()))


def _balance(counts: dict[str, int], available: dict[str, int], total: int) -> tuple[dict, str]:
    """Per attribute: target, min, max, min/max ratio; and a sentence on how close to balance it is."""
    balance: dict[str, dict] = {}
    sentences: list[str] = []
    for attribute, groups in ATTRIBUTES.items():
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


def balanced_subset(records: Sequence[Record], n: int, *, seed: int = 0) -> SubsetResult:
    """Pick ``n`` records at random (seeded) with the demographic groups as equal as possible."""
    check_subset_size(n)
    rng = np.random.default_rng(seed)
    pools: dict[tuple[str, str], list[int]] = {cell: [] for cell in CELLS}
    rest: list[int] = []
    for i, r in enumerate(records):
        cell = (r.sex, r.age_group)
        (pools[cell] if cell in pools else rest).append(i)  # type: ignore[index]
    for cell in CELLS:
        pools[cell] = [pools[cell][j] for j in rng.permutation(len(pools[cell]))]
    rest = [rest[j] for j in rng.permutation(len(rest))]

    want = min(n, len(records))
    sex_count = dict.fromkeys(SEX_GROUPS, 0)
    age_count = dict.fromkeys(AGE_GROUPS, 0)
    taken = dict.fromkeys(CELLS, 0)
    chosen: list[int] = []
    sex_w, age_w = len(SEX_GROUPS) / want, len(AGE_GROUPS) / want
    while len(chosen) < want:
        open_cells = [c for c in CELLS if taken[c] < len(pools[c])]
        if not open_cells:
            break
        cell = min(open_cells, key=lambda c: (sex_count[c[0]] * sex_w + age_count[c[1]] * age_w, taken[c]))
        chosen.append(pools[cell][taken[cell]])
        taken[cell] += 1
        sex_count[cell[0]] += 1
        age_count[cell[1]] += 1
    chosen.extend(rest[: want - len(chosen)])
    chosen.sort()

    picked = [records[i] for i in chosen]
    counts, available = group_counts(picked), group_counts(records)
    balance, note = _balance(counts, available, len(picked))
    if len(picked) < n:
        note = f"only {len(picked)} records available, all taken; " + note
    missing = sum(1 for r in picked if r.sex is None or r.age_group is None)
    if missing:
        note += f"; {missing} records with unknown sex or age were added to reach the size"
    report = {
        "requested": n,
        "achieved": len(picked),
        "available": len(records),
        "seed": seed,
        "group_counts": counts,
        "available_group_counts": available,
        "cell_counts": cell_counts(picked),
        "balance": balance,
        "note": note,
    }
    return SubsetResult(records=picked, report=report)


def split_records(
    records: Sequence[Record], *, seed: int = 0, fractions: Sequence[float] = FRACTIONS
) -> dict[str, list[int]]:
    """Indices of ``records`` per split, stratified by class, all images of one lesion in one split."""
    units: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        units[f"lesion:{r.lesion_id}" if r.lesion_id else f"image:{r.image}"].append(i)
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

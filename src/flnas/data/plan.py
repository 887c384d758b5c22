"""Records cache: the checked records, balanced subset and split of a dataset, stored next to the images.

Reading the CSVs, checking every row, choosing the subset and splitting cost several times more
than loading the decoded images from their cache, so a warm ``prepare_data`` caches them too. A
:class:`Plan` holds everything ``prepare_data`` needs before and after the image stage: the chosen
records as columns, the subset report, the split indices and the whole-dataset counts of the summary.

An entry ``records-<name>.json`` lives in the image cache folder. ``name`` hashes the dataset folder (or
card file), ``subset``, ``seed`` and ``skip_bad``; the entry's key also covers the card, the size and
modification time of the CSVs, the names in the image folder (a listed image that appears or disappears changes the
records), whether ``SYNTHETIC.txt`` exists, and a hash of the data-layer source (so a code change that
could change the records rebuilds it). Image *contents* are checked by the image cache. The file is a
JSON header line (version, key, SHA-256 of the rest) followed by the JSON payload; an entry whose key
differs is stale, one that cannot be read or fails its hash is corrupt, and both are rebuilt in place.
Bad input is never cached: without ``skip_bad`` it raises before anything is written, so a warm call
raises the same error as a cold one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flnas.data.card import Card, resolve_card
from flnas.data.loader import MARKER, Record, load_card
from flnas.data.subset import balanced_subset, check_subset_size, group_counts, split_records

PLAN_VERSION = 2
_SOURCES = ("card.py", "loader.py", "isic.py", "subset.py", "groups.py", "plan.py")
COLUMNS = ("image", "path", "label", "row", "unit", "split")


@dataclass
class Plan:
    """The chosen records (as columns) and everything the summary says about them and the dataset."""

    root: str
    name: str
    images: str  # the image folder, relative to root
    manifest: str  # the manifest CSV's name (messages name its rows)
    sources: str  # the CSV the sensitive columns come from (messages)
    classes: list[str]
    synthetic: bool
    skipped: dict[str, int]
    dataset: dict  # the summary's "dataset" object (counts before the subset, plus no_metadata)
    columns: dict[str, list]  # COLUMNS -> one value per chosen record; paths absolute strings
    groups: dict[str, list]  # attribute -> the group of each chosen record (None: in no group)
    values: dict[str, list]  # sensitive column -> the raw value of each chosen record (None: unknown)
    numeric: list[str]  # the sensitive columns whose values are numbers
    attributes: dict[str, list[str]]  # attribute -> its groups, card order then intersections
    balance_on: list[str]
    given_split: bool  # the card's split_column decides the split
    subset_report: dict | None
    split: dict[str, list[int]]  # indices into the columns
    counts: dict  # class_counts, group_counts, missing of the chosen records
    #: attribute -> how predictions.csv's column becomes its groups ({"column": C} or {"column": C, "bins": [..]});
    #: empty for the built-in ISIC card, whose sex and age_approx columns `flnas metrics` reads by default
    sensitive: dict[str, dict] = field(default_factory=dict)
    status: str = "built"  # "hit", "built", "rebuilt (stale)" or "rebuilt (corrupt)"

    def records(self) -> list[Record]:
        """The chosen records as :class:`Record` objects (only needed when images must be dropped)."""
        c, n = self.columns, len(self.columns["image"])
        return [Record(image=c["image"][i], path=Path(c["path"][i]), label=c["label"][i], row=c["row"][i],
                       groups={a: g[i] for a, g in self.groups.items()},
                       values={k: (math.nan if v[i] is None and k in self.numeric else v[i])
                               for k, v in self.values.items()},
                       unit=c["unit"][i], split=c["split"][i]) for i in range(n)]


def record_counts(records: list[Any], classes: list[str],
                  attributes: dict[str, Any] | None = None) -> dict:
    """class_counts, group_counts and missing (records in no group, per attribute) of some records."""
    from flnas.data.groups import ATTRIBUTES

    attributes = ATTRIBUTES if attributes is None else attributes
    labels = Counter(r.label for r in records)
    return {
        "class_counts": {c: labels.get(c, 0) for c in classes},
        "group_counts": group_counts(records, attributes),
        "missing": {a: sum(r.groups.get(a) is None for r in records) for a in attributes},
    }


def _source_digest() -> str:
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _SOURCES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def plan_key(root: Path, card: Card, card_file: Path | None, *, subset: int | None, seed: int,
             skip_bad: bool) -> tuple[str, str]:
    """(entry name, key) of a plan; OSError when the folder, image folder or a CSV is missing."""
    absolute = os.path.abspath(root)
    where = os.path.abspath(card_file) if card_file is not None else absolute
    name = hashlib.sha256(f"{where}|{subset}|{seed}|{skip_bad}".encode()).hexdigest()[:24]
    digest = hashlib.sha256(f"flnas-records-v{PLAN_VERSION}|{name}|{_source_digest()}".encode())
    digest.update(json.dumps(card.model_dump(mode="json"), sort_keys=True).encode())
    for csv in (card.manifest, card.metadata):
        if csv is not None:
            st = os.stat(os.path.join(absolute, csv))
            digest.update(f"\n{csv}|{st.st_size}|{st.st_mtime_ns}".encode())
    digest.update(f"\nsynthetic|{os.path.isfile(os.path.join(absolute, MARKER))}".encode())
    digest.update("\n".join(sorted(os.listdir(os.path.join(absolute, card.images)))).encode())
    return f"records-{name}", digest.hexdigest()


def build_plan(root: Path, card: Card, card_file: Path | None = None, *, subset: int | None, seed: int,
               skip_bad: bool) -> Plan:
    """Read, check, subset and split ``root`` (the uncached path; raises DataError on bad input)."""
    loaded = load_card(card, root, card_file=card_file, skip_bad=skip_bad)
    attributes = loaded.attributes
    records, subset_report = loaded.records, None
    if subset is not None:
        chosen = balanced_subset(records, subset, seed=seed, attributes=attributes, balance_on=card.balanced)
        records, subset_report = chosen.records, chosen.report
    numeric = [s.column for s in card.sensitive.values() if s.numeric]
    columns = {
        "image": [r.image for r in records],
        "path": [os.path.abspath(r.path) for r in records],
        "label": [r.label for r in records],
        "row": [r.row for r in records],
        "unit": [r.unit for r in records],
        "split": [r.split for r in records],
    }
    values = {s.column: [None if isinstance(v, float) and math.isnan(v) else v
                         for v in (r.values[s.column] for r in records)] for s in card.sensitive.values()}
    dataset = {"records": len(loaded.records), **record_counts(loaded.records, loaded.classes, attributes),
               "no_metadata": loaded.no_metadata}
    if loaded.dropped_classes is not None:
        dataset["dropped_classes"] = loaded.dropped_classes
    given = card.split_column is not None
    return Plan(root=str(loaded.root), name=loaded.name, images=card.images, manifest=Path(card.manifest).name,
                sources=Path(card.metadata or card.manifest).name, classes=loaded.classes, synthetic=loaded.synthetic,
                skipped=dict(loaded.skipped), dataset=dataset, columns=columns,
                groups={a: [r.groups[a] for r in records] for a in attributes}, values=values, numeric=numeric,
                attributes={a: list(g) for a, g in attributes.items()}, balance_on=card.balanced,
                given_split=given, subset_report=subset_report, split=split_records(records, seed=seed, given=given),
                counts=record_counts(records, loaded.classes, attributes),
                sensitive={} if card_file is None else sensitive_record(card))


def sensitive_record(card: Card) -> dict[str, dict]:
    """attribute -> the column of predictions.csv it is read from, and its bins when numeric.

    A categorical column there holds group names (the card's mapping is already applied), so the column is
    all a reader needs; a numeric one holds the raw numbers, binned by ``bins``.
    """
    return {a: {"column": s.column, **({"bins": list(s.bins)} if s.bins is not None else {})}
            for a, s in card.sensitive.items()}


def _read(path: Path, key: str) -> tuple[str, Plan | None]:
    if not path.exists():
        return "built", None
    try:
        data = path.read_bytes()
        head, _, body = data.partition(b"\n")
        header = json.loads(head)
        if header.get("version") != PLAN_VERSION or header.get("key") != key:
            return "rebuilt (stale)", None
        if hashlib.sha256(body).hexdigest() != header.get("sha256"):
            return "rebuilt (corrupt)", None
        payload = json.loads(body)
        plan = Plan(**payload, status="hit")
        n = len(plan.columns["image"])
        if any(len(plan.columns[c]) != n for c in COLUMNS) or any(len(g) != n for g in plan.groups.values()) or \
                sorted(i for idx in plan.split.values() for i in idx) != list(range(n)):
            return "rebuilt (corrupt)", None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return "rebuilt (corrupt)", None
    return "hit", plan


def _write(path: Path, key: str, plan: Plan) -> None:
    payload = {k: v for k, v in plan.__dict__.items() if k != "status"}
    body = json.dumps(payload, separators=(",", ":")).encode()
    header = json.dumps({"version": PLAN_VERSION, "key": key, "sha256": hashlib.sha256(body).hexdigest()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(header.encode() + b"\n" + body)
        os.replace(tmp, path)
    except OSError:
        pass  # best effort: the image cache in the same folder reports an unwritable folder


def load_plan(root: str | Path, cache_dir: Path, *, subset: int | None, seed: int, skip_bad: bool) -> Plan:
    """The plan of ``root`` (a card file, a folder with ``flnas.yaml``, or the ISIC layout) from the records
    cache when it is current, else built (and cached)."""
    card, folder, card_file = resolve_card(root)
    check_subset_size(subset)
    try:
        name, key = plan_key(folder, card, card_file, subset=subset, seed=seed, skip_bad=skip_bad)
    except OSError:  # something is missing: the loader raises the right one-line error
        return build_plan(folder, card, card_file, subset=subset, seed=seed, skip_bad=skip_bad)
    path = cache_dir / f"{name}.json"
    status, plan = _read(path, key)
    if plan is not None:
        return plan
    plan = build_plan(folder, card, card_file, subset=subset, seed=seed, skip_bad=skip_bad)
    plan.status = status
    _write(path, key, plan)
    return plan


__all__ = ["Plan", "build_plan", "load_plan", "plan_key", "record_counts", "sensitive_record"]

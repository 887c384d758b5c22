"""Records cache: the checked records, balanced subset and split of a dataset, stored next to the images.

Reading the two CSVs, checking every row, choosing the subset and splitting cost several times more
than loading the decoded images from their cache, so a warm ``prepare_data`` caches them too. A
:class:`Plan` holds everything ``prepare_data`` needs before and after the image stage: the chosen
records as columns, the subset report, the split indices and the whole-dataset counts of the summary.

An entry ``records-<name>.json`` lives in the image cache folder. ``name`` hashes the dataset folder,
``subset``, ``seed`` and ``skip_bad``; the entry's key also covers the size and modification time of
both CSVs, the names in the image folder (a listed image that appears or disappears changes the
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
from dataclasses import dataclass
from pathlib import Path

from flnas.data.isic import GROUND_TRUTH, IMAGE_DIR, METADATA, Record, load_records
from flnas.data.subset import balanced_subset, check_subset_size, group_counts, split_records

PLAN_VERSION = 1
_SOURCES = ("isic.py", "subset.py", "groups.py", "plan.py")
COLUMNS = ("image", "path", "label", "row", "sex", "age_approx", "lesion_id", "site")


@dataclass
class Plan:
    """The chosen records (as columns) and everything the summary says about them and the dataset."""

    root: str
    classes: list[str]
    synthetic: bool
    skipped: dict[str, int]
    dataset: dict  # the summary's "dataset" object (counts before the subset, plus no_metadata)
    columns: dict[str, list]  # COLUMNS -> one value per chosen record; paths absolute strings
    subset_report: dict | None
    split: dict[str, list[int]]  # indices into the columns
    counts: dict  # class_counts, group_counts, missing of the chosen records
    status: str = "built"  # "hit", "built", "rebuilt (stale)" or "rebuilt (corrupt)"

    def records(self) -> list[Record]:
        """The chosen records as :class:`Record` objects (only needed when images must be dropped)."""
        c = self.columns
        return [Record(image=c["image"][i], path=Path(c["path"][i]), label=c["label"][i], row=c["row"][i],
                       sex=c["sex"][i], age_approx=math.nan if c["age_approx"][i] is None else c["age_approx"][i],
                       lesion_id=c["lesion_id"][i], site=c["site"][i]) for i in range(len(c["image"]))]


def record_counts(records: list[Record], classes: list[str]) -> dict:
    """class_counts, group_counts and missing {sex, age} of some records."""
    labels = Counter(r.label for r in records)
    return {
        "class_counts": {c: labels.get(c, 0) for c in classes},
        "group_counts": group_counts(records),
        "missing": {"sex": sum(r.sex is None for r in records),
                    "age": sum(r.age_group is None for r in records)},
    }


def _source_digest() -> str:
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _SOURCES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def plan_key(root: Path, *, subset: int | None, seed: int, skip_bad: bool) -> tuple[str, str]:
    """(entry name, key) of a plan; OSError when the folder, image folder or a CSV is missing."""
    absolute = os.path.abspath(root)
    name = hashlib.sha256(f"{absolute}|{subset}|{seed}|{skip_bad}".encode()).hexdigest()[:24]
    digest = hashlib.sha256(f"flnas-records-v{PLAN_VERSION}|{name}|{_source_digest()}".encode())
    for csv in (GROUND_TRUTH, METADATA):
        st = os.stat(os.path.join(absolute, csv))
        digest.update(f"\n{csv}|{st.st_size}|{st.st_mtime_ns}".encode())
    digest.update(f"\nsynthetic|{os.path.isfile(os.path.join(absolute, 'SYNTHETIC.txt'))}".encode())
    digest.update("\n".join(sorted(os.listdir(os.path.join(absolute, IMAGE_DIR)))).encode())
    return f"records-{name}", digest.hexdigest()


def build_plan(root: Path, *, subset: int | None, seed: int, skip_bad: bool) -> Plan:
    """Read, check, subset and split ``root`` (the uncached path; raises DataError on bad input)."""
    loaded = load_records(root, skip_bad=skip_bad)
    records, subset_report = loaded.records, None
    if subset is not None:
        chosen = balanced_subset(records, subset, seed=seed)
        records, subset_report = chosen.records, chosen.report
    columns = {
        "image": [r.image for r in records],
        "path": [os.path.abspath(r.path) for r in records],
        "label": [r.label for r in records],
        "row": [r.row for r in records],
        "sex": [r.sex for r in records],
        "age_approx": [None if math.isnan(r.age_approx) else r.age_approx for r in records],
        "lesion_id": [r.lesion_id for r in records],
        "site": [r.site for r in records],
    }
    dataset = {"records": len(loaded.records), **record_counts(loaded.records, loaded.classes),
               "no_metadata": loaded.no_metadata}
    return Plan(root=str(loaded.root), classes=loaded.classes, synthetic=loaded.synthetic,
                skipped=dict(loaded.skipped), dataset=dataset, columns=columns, subset_report=subset_report,
                split=split_records(records, seed=seed), counts=record_counts(records, loaded.classes))


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
        if any(len(plan.columns[c]) != n for c in COLUMNS) or \
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
    """The plan of ``root`` from the records cache when it is current, else built (and cached)."""
    root = Path(root).expanduser()
    check_subset_size(subset)
    try:
        name, key = plan_key(root, subset=subset, seed=seed, skip_bad=skip_bad)
    except OSError:  # something is missing: the loader raises the right one-line error
        return build_plan(root, subset=subset, seed=seed, skip_bad=skip_bad)
    path = cache_dir / f"{name}.json"
    status, plan = _read(path, key)
    if plan is not None:
        return plan
    plan = build_plan(root, subset=subset, seed=seed, skip_bad=skip_bad)
    plan.status = status
    _write(path, key, plan)
    return plan


__all__ = ["Plan", "build_plan", "load_plan", "plan_key", "record_counts"]

"""ISIC 2019 through the built-in card gives what flnas gave before dataset cards, bit for bit.

tests/data/isic_reference.json was recorded on main (04c1234) before the card change, on the real subset
(../shared/data/isic2019_subset): the `flnas data summary --json` object (without the machine-specific
root and cache) for the whole set and for --subset 600 with seeds 0 and 1, a fingerprint of every split
(image ids, labels and sex/age groups in split order) and the metrics of a 3-epoch `flnas evaluate` of the
example spec on CPU. Numbers and image ids only, never images.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from flnas.cli.main import main
from flnas.data import prepare_data
from test_data_isic import summary as run  # runs the CLI, returns its JSON

pytestmark = [pytest.mark.slow, pytest.mark.isic]

REFERENCE = json.loads((Path(__file__).parent / "data" / "isic_reference.json").read_text())
CASES = {"full": (None, 0), "subset600": (600, 0), "subset600_seed1": (600, 1)}
SPEC = Path(__file__).resolve().parents[1] / "src" / "flnas" / "space" / "example_spec.json"


def fingerprint(prepared) -> dict:
    """Per split: its size, and hashes of its image ids and of (id, label, sex, age group) in split order."""
    out = {}
    for name, split in prepared.splits.items():
        sex, age = split.groups["sex"], split.groups["age"]
        lines = [f"{i},{int(label)},{s},{a}"
                 for i, label, s, a in zip(split.image_ids, split.labels.tolist(), sex, age, strict=True)]
        out[name] = {"n": len(lines), "ids_sha256": hashlib.sha256("\n".join(split.image_ids).encode()).hexdigest(),
                     "rows_sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
                     "first_ids": split.image_ids[:5]}
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_summary_and_split_identical_to_before_cards(case, isic_dir, tmp_path, capsys):
    subset, seed = CASES[case]
    extra = ["--subset", str(subset), "--seed", str(seed)] if subset else []
    summary = run(["data", "summary", "--data", str(isic_dir), "--json", "--no-progress", "--image-size", "32",
                   "--cache-dir", str(tmp_path), *extra], capsys)
    summary.pop("cache"), summary.pop("root")
    assert summary == REFERENCE["summary"][case]
    prepared = prepare_data(isic_dir, subset=subset, seed=seed, image_size=32, cache_dir=tmp_path, progress=False)
    assert prepared.attributes == {"sex": ("male", "female"), "age": ("young", "middle", "old")}
    assert fingerprint(prepared) == REFERENCE["splits"][case]


def test_the_printed_card_reads_the_same_data(isic_dir, tmp_path, capsys):
    """`flnas data card DIR` > card.yaml, with images/manifest pointing back at DIR: the same summary."""
    with pytest.raises(SystemExit) as exc:
        main(["data", "card", str(isic_dir)])
    text = capsys.readouterr().out
    assert exc.value.code == 0
    import yaml

    card = yaml.safe_load(text)
    for key in ("images", "manifest", "metadata"):
        card[key] = str(isic_dir / card[key])
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))  # card order matters
    summary = run(["data", "summary", "--data", str(tmp_path / "card.yaml"), "--json", "--no-progress",
                   "--image-size", "32", "--cache-dir", str(tmp_path / "c"), "--subset", "600"], capsys)
    summary.pop("cache"), summary.pop("root")
    assert summary == REFERENCE["summary"]["subset600"]


def test_metrics_identical_to_before_cards(isic_dir, tmp_path, capsys):
    torch.set_num_threads(1)  # the reference was measured with one thread (float sums depend on it)
    metrics = run(["evaluate", str(SPEC), "--data", str(isic_dir), "--subset", "600", "--epochs", "3",
                   "--image-size", "32", "--device", "cpu", "--no-hardware", "--class-weighted", "--json",
                   "--cache-dir", str(tmp_path)], capsys)
    for split in ("val", "test"):
        expected = REFERENCE["metrics"][split]
        assert {k: metrics[split][k] for k in expected} == expected

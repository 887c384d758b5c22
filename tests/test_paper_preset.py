"""The paper preset (``--accuracy plain --no-class-weighted``) reproduces main's numbers from before issue 10.

``data/paper_preset_main.json`` was recorded on main at 9540ff4 (before the balanced accuracy of record,
the class-weighted default and degenerate candidates existed) for a tiny fixed config: the embedded
synthetic default set at 16x16, 2 epochs, 3 random-search candidates and 1 heuristic one, 1 torch thread.
The same config under the paper preset must give the same metrics for every trial, the same trial values
and the same selection, bit for bit on the CPU that recorded it (elsewhere float kernels may differ in the
last digits, so the comparison there allows 1e-9 relative).

The one deliberate difference: a candidate that is degenerate (trial 2 here: it answers NV for every
validation image, balanced accuracy 12.5%) is now recorded with status "degenerate" (Optuna state FAIL, no
values) instead of "ok", and so drops out of the ranking; its metrics are unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

GOLDEN = Path(__file__).with_name("data") / "paper_preset_main.json"
DROP = ("seconds", "time", "latency", "throughput", "epoch_log", "device")


def _clean(x):
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items() if not any(d in k for d in DROP)}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return text.split("model name")[1].split(":")[1].split("\n")[0].strip()
    except (OSError, IndexError):
        return "unknown"


def _compare(got, want, path, exact):
    """Every value recorded on main is there and equal (keys added since then are allowed)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        for key, value in want.items():
            assert key in got, f"{path}.{key} is missing"
            _compare(got[key], value, f"{path}.{key}", exact)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _compare(g, w, f"{path}[{i}]", exact)
    elif isinstance(want, float) and not exact:
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), path
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def test_paper_preset_reproduces_main_bit_for_bit(tmp_path):
    import torch

    from flnas.data import prepare_data
    from flnas.data.groups import AGE_GROUPS, SEX_GROUPS
    from flnas.data.synthetic import default_synthetic_dir
    from flnas.designers.registry import create_designer
    from flnas.evaluate import Evaluator
    from flnas.evaluate.config import EvaluatorConfig
    from flnas.records import TaskInfo, get_best, rank
    from flnas.space import load_choices
    from flnas.study.history import load_candidates
    from flnas.study.loop import run_search
    from flnas.study.setup import PAPER_PRESET
    from flnas.study.storage import open_study

    golden = json.loads(GOLDEN.read_text())
    torch.set_num_threads(1)
    data = prepare_data(default_synthetic_dir(), image_size=16, seed=0, cache_dir=tmp_path / "cache", progress=False)
    config = EvaluatorConfig(
        epochs=2,
        patience=1,
        seed=0,
        device="cpu",
        num_threads=1,
        measure_hardware=False,
        class_weighted_loss=PAPER_PRESET["class_weighted_loss"],
    )
    choices = load_choices(None).model_copy(update={"max_params": 50_000, "max_flops": 2_000_000})
    task = TaskInfo(
        dataset=data.name,
        classes=list(data.classes),
        groups={"sex": list(SEX_GROUPS), "age": list(AGE_GROUPS)},
        image_size=16,
        env="Raspberry Pi 4",
    )
    study = open_study("preset", f"sqlite:///{tmp_path / 'p.db'}")
    evaluator = Evaluator(data, config, choices=choices)
    accuracy = PAPER_PRESET["accuracy"]
    for name, iters in (("random", 3), ("heuristic", 1)):
        run_search(
            study,
            designer=create_designer(name),
            evaluator=evaluator,
            task=task,
            choices=choices,
            iters=iters,
            seed=0,
            accuracy=accuracy,
            log=lambda _m: None,
        )
    candidates = load_candidates(study)
    got = {
        "trials": [
            {
                "number": t.number,
                "designer": t.user_attrs.get("designer"),
                "status": t.user_attrs.get("status"),
                "values": t.values,
                "spec": t.user_attrs.get("spec"),
                "metrics": _clean(t.user_attrs.get("metrics")),
            }
            for t in study.get_trials(deepcopy=False)
        ],
        "best_fair": get_best(candidates, accuracy=accuracy).number,
        "rank_fair": [c.number for c in rank(candidates, accuracy=accuracy)],
        "best_accuracy": get_best(candidates, rule="accuracy", accuracy=accuracy).number,
    }
    exact = _cpu() == golden["_recorded"]["cpu"]
    golden.pop("_recorded")
    degenerate = {t["number"] for t in got["trials"] if t["status"] == "degenerate"}
    assert degenerate == {2}  # the one-class predictor of this config (see the module docstring)
    for t, want in zip(got["trials"], golden["trials"], strict=True):
        if t["number"] in degenerate:
            assert want["status"] == "ok" and t["values"] is None
            t["status"], t["values"] = want["status"], want["values"]  # compared below: everything else
    golden["rank_fair"] = [n for n in golden["rank_fair"] if n not in degenerate]
    _compare(got, golden, "golden", exact)


@pytest.mark.parametrize("key", ["accuracy", "class_weighted_loss"])
def test_paper_preset_differs_from_the_new_study_default(key):
    from flnas.study.setup import NEW_STUDY, PAPER_PRESET

    assert PAPER_PRESET[key] != NEW_STUDY[key]

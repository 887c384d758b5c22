"""bf16 autocast and channels_last in the evaluator: applied, stored in the setup, refused when unknown."""

from __future__ import annotations

import pytest
import torch

from flnas.errors import FlnasError
from flnas.evaluate import EvaluatorConfig
from flnas.evaluate import device as device_mod
from flnas.evaluate.device import resolve_precision
from flnas.evaluate.evaluator import check_config
from flnas.study.setup import setup_conflicts
from test_train import run

CPU = torch.device("cpu")


def test_bf16_trains_under_autocast_and_keeps_fp32_weights():
    fp32_model, fp32 = run(EvaluatorConfig(epochs=2, patience=0, batch_size=16, seed=3))
    bf16_model, bf16 = run(EvaluatorConfig(epochs=2, patience=0, batch_size=16, seed=3, precision="bf16"))
    assert all(v.dtype == torch.float32 for v in bf16_model.state_dict().values() if v.is_floating_point())
    assert all(h["train_loss"] == h["train_loss"] for h in bf16.history)  # finite, not NaN
    # the arithmetic differs, so the trained weights do (the same seed gives bit-identical fp32 runs)
    assert not all(torch.equal(fp32_model.state_dict()[k], bf16_model.state_dict()[k]) for k in fp32_model.state_dict())
    assert abs(fp32.history[-1]["val_loss"] - bf16.history[-1]["val_loss"]) < 0.5


def test_channels_last_trains_nhwc_and_hands_back_the_usual_layout():
    model, result = run(EvaluatorConfig(epochs=1, patience=0, batch_size=16, seed=3, channels_last=True))
    conv = model[0].weight
    assert conv.is_contiguous() and result.epochs == 1  # back to NCHW: latency and export are comparable
    seen = {}

    def hook(_module, inputs):
        seen.setdefault("nhwc", inputs[0].is_contiguous(memory_format=torch.channels_last))

    model[0].register_forward_pre_hook(hook)
    run(EvaluatorConfig(epochs=1, patience=0, batch_size=16, seed=3, channels_last=True), model=model)
    assert seen == {"nhwc": True}


def test_auto_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert resolve_precision("auto", CPU) == "fp32"  # no native bf16: emulated bf16 is slower
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: {"amx_bf16", "amx_tile"})
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("FP32", CPU) == "fp32"
    with pytest.raises(FlnasError, match="precision 'fp16' is not supported; use auto, fp32 or bf16"):
        resolve_precision("fp16", CPU)


def test_an_unknown_precision_in_a_config_is_refused():
    with pytest.raises(FlnasError, match="precision must be one of fp32, bf16"):
        check_config(EvaluatorConfig(precision="fp8"))


def test_a_study_without_the_settings_was_trained_fp32_nchw_and_says_so_on_resume():
    stored = {"train": {"epochs": 3, "class_weighted_loss": True}}  # a study from before the settings
    assert setup_conflicts(stored, {"train": {"precision": "fp32", "channels_last": False}}) == []
    got = setup_conflicts(stored, {"train": {"precision": "bf16", "channels_last": True}})
    assert got == [
        "--precision bf16 (the study has fp32)",
        "--channels-last (the study trains in the usual memory format)",
    ]
    both = {"train": {"precision": "bf16", "channels_last": True}}
    assert setup_conflicts(both, {"train": {"precision": "fp32", "channels_last": False}}) == [
        "--precision fp32 (the study has bf16)",
        "--no-channels-last (the study trains in channels_last)",
    ]

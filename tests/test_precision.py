"""bf16/fp16 autocast and channels_last in the evaluator: applied, stored in the setup, refused where unsupported.

No GPU runs these tests: the fp16 path (float16 autocast + ``torch.amp.GradScaler``) is exercised on the CPU,
where torch has both; the code is the same on CUDA apart from the device type it is given.
"""

from __future__ import annotations

import pytest
import torch

from flnas.errors import FlnasError
from flnas.evaluate import Evaluator, EvaluatorConfig
from flnas.evaluate import device as device_mod
from flnas.evaluate import train as train_mod
from flnas.evaluate.device import FP16_NEEDS_CUDA, resolve_precision
from flnas.evaluate.evaluator import check_config
from flnas.study.setup import setup_conflicts
from test_evaluate_cli import run_cli
from test_train import run, tiny_model

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
    monkeypatch.setattr(device_mod, "cpu_flags", set)  # no /proc/cpuinfo: torch's own probe decides
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert resolve_precision("auto", CPU) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("FP32", CPU) == "fp32"
    with pytest.raises(FlnasError, match=r"precision 'fp8' is not supported; use auto, fp32, bf16 or fp16 \(CUDA"):
        resolve_precision("fp8", CPU)


def test_auto_on_cuda_needs_native_bf16_not_emulated(monkeypatch):
    asked = []

    def supported(including_emulation=True):
        asked.append(including_emulation)
        return native_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    native_gpu = False  # e.g. a T4: torch's default answer would be True (emulated)
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    native_gpu = True
    assert resolve_precision("auto", torch.device("cuda:0")) == "bf16"
    assert asked == [False, False]
    assert resolve_precision("fp16", torch.device("cuda")) == "fp16"  # auto never picks fp16


def _autocast_dtype_seen(model):
    seen = []
    model[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype) if model.training else None)
    return seen


def test_fp16_trains_under_float16_autocast_with_a_grad_scaler():
    model = tiny_model()
    seen = _autocast_dtype_seen(model)
    start = {k: v.clone() for k, v in model.named_parameters()}
    trained, result = run(EvaluatorConfig(epochs=2, patience=0, batch_size=16, seed=3, precision="fp16"), model=model)
    assert set(seen) == {torch.float16}  # the convolution ran in float16
    assert all(v.dtype == torch.float32 for v in trained.state_dict().values() if v.is_floating_point())
    assert all(h["loss_scale"] > 0 and h["train_loss"] == h["train_loss"] for h in result.history)
    assert any(not torch.equal(start[k], v) for k, v in trained.named_parameters())  # steps were taken
    fp32_model, fp32 = run(EvaluatorConfig(epochs=1, patience=0, batch_size=16, seed=3))
    _, bf16 = run(EvaluatorConfig(epochs=1, patience=0, batch_size=16, seed=3, precision="bf16"))
    assert "loss_scale" not in fp32.history[0] and "loss_scale" not in bf16.history[0]  # no scaler there


def separable_model() -> torch.nn.Sequential:
    """A plain conv, then a depthwise-separable pair (depthwise 3x3, pointwise 1x1), as sepconv builds it."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


def _conv_dtypes_while_training(config):
    """Per conv of :func:`separable_model`: the dtypes its input and output had in training forwards."""
    model = separable_model()
    seen = {i: set() for i in (0, 1, 3)}

    def record(index):
        def hook(module, inputs, out):
            if module.training:
                seen[index].add((inputs[0].dtype, out.dtype, "forward" in vars(module)))

        return hook

    for i in seen:
        model[i].register_forward_hook(record(i))
    trained, result = run(config, model=model)
    assert result.epochs == config.epochs and all(h["train_loss"] == h["train_loss"] for h in result.history)
    assert all("forward" not in vars(m) for m in trained.modules())  # the override is gone after training
    return seen


@pytest.mark.parametrize("channels_last", [False, True])
def test_cpu_bf16_runs_depthwise_convolutions_in_fp32_and_the_others_in_bf16(channels_last):
    # oneDNN's bf16 depthwise kernel is several times slower than fp32 on avx512_bf16 CPUs (BENCHMARKS.md 5)
    bf16 = EvaluatorConfig(epochs=1, patience=0, batch_size=16, seed=3, precision="bf16", channels_last=channels_last)
    seen = _conv_dtypes_while_training(bf16)
    f32, b16 = torch.float32, torch.bfloat16
    assert seen[0] == {(f32, b16, False)}  # plain conv: autocast as before
    assert seen[1] == {(b16, f32, True)}  # depthwise: its bf16 input is cast up, no autocast inside
    assert seen[3] == {(f32, b16, False)}  # pointwise after it: autocast again


def test_fp32_and_fp16_training_leave_depthwise_convolutions_alone():
    fp32 = _conv_dtypes_while_training(EvaluatorConfig(epochs=1, patience=0, batch_size=16, seed=3))
    assert all(v == {(torch.float32, torch.float32, False)} for v in fp32.values())
    fp16 = _conv_dtypes_while_training(EvaluatorConfig(epochs=1, patience=0, batch_size=16, seed=3, precision="fp16"))
    assert fp16[1] == {(torch.float16, torch.float16, False)}  # CUDA's fp16 depthwise kernels are fast


def test_the_fp32_depthwise_override_is_removed_when_training_fails():
    model = separable_model()
    with pytest.raises(RuntimeError, match="boom"), train_mod.depthwise_in_fp32(model, CPU, "bf16"):
        assert "forward" in vars(model[1]) and "forward" not in vars(model[0])
        raise RuntimeError("boom")
    assert all("forward" not in vars(m) for m in model.modules())
    assert not train_mod.is_depthwise(torch.nn.Conv2d(1, 1, 3, groups=1))  # one channel: an ordinary conv


def test_the_grad_scaler_skips_steps_whose_gradients_overflow(monkeypatch):
    # a scale of 2^100 makes every float16 gradient inf: each of the 4 steps is skipped and halves the scale
    monkeypatch.setattr(train_mod, "INIT_LOSS_SCALE", 2.0**100)
    model = tiny_model()
    start = {k: v.clone() for k, v in model.named_parameters()}
    trained, result = run(EvaluatorConfig(epochs=1, patience=0, batch_size=16, seed=3, precision="fp16"), model=model)
    assert result.history[0]["loss_scale"] == 2.0**96
    assert all(torch.equal(start[k], v) for k, v in trained.named_parameters())


def test_fp16_is_refused_off_cuda_in_one_sentence_naming_bf16(synth_data):
    with pytest.raises(FlnasError) as info:
        resolve_precision("fp16", CPU)
    assert str(info.value) == FP16_NEEDS_CUDA and "bf16" in FP16_NEEDS_CUDA and FP16_NEEDS_CUDA.count(".") == 0
    with pytest.raises(FlnasError, match="needs a CUDA GPU"):  # the library, before any training
        Evaluator(synth_data, EvaluatorConfig(precision="fp16", device="cpu"))


@pytest.mark.parametrize("command", ["evaluate", "search"])
def test_the_cli_refuses_fp16_on_a_cpu_before_training(command, synth_dir, tmp_path, capsys):
    store, spec = tmp_path / "s.db", tmp_path / "spec.json"
    spec.write_text('{"layers": [{"type": "conv", "channels": 8, "stride": 2}]}')
    argv = {
        "evaluate": ["evaluate", spec, "--data", synth_dir, "--cache-dir", tmp_path / "cache"],
        "search": ["search", "--data", synth_dir, "--storage", store, "--iters", "1"],
    }[command]
    code, out, err = run_cli([*argv, "--precision", "fp16", "--device", "cpu"], capsys)
    assert code == 2 and FP16_NEEDS_CUDA in " ".join(err.split()) and not store.exists()
    assert "Traceback" not in err and "epoch" not in err


def test_latency_and_export_are_measured_in_fp32_after_mixed_precision_training(synth_data, monkeypatch):
    import flnas.evaluate.hardware as hardware

    seen = {}

    def measure(model, *args, **kwargs):
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        seen["dtypes"] = {p.dtype for p in model.parameters()}
        seen["nchw"] = all(p.is_contiguous() for p in model.parameters())
        seen["plain modules"] = not any("forward" in vars(m) for m in model.modules())
        return {}

    monkeypatch.setattr(hardware, "measure_hardware", measure)
    config = EvaluatorConfig(epochs=1, patience=0, batch_size=32, device="cpu", precision="bf16", channels_last=True)
    result = Evaluator(synth_data, config).evaluate(
        {
            "layers": [{"type": "conv", "channels": 8, "stride": 2}, {"type": "sepconv", "channels": 8, "stride": 2}],
            "head": {"hidden": []},
        }
    )
    assert result.ok, result.reason
    assert seen == {"autocast": False, "dtypes": {torch.float32}, "nchw": True, "plain modules": True}


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
    assert setup_conflicts({"train": {"precision": "fp16"}}, {"train": {"precision": "bf16"}}) == [
        "--precision bf16 (the study has fp16)"
    ]
    both = {"train": {"precision": "bf16", "channels_last": True}}
    assert setup_conflicts(both, {"train": {"precision": "fp32", "channels_last": False}}) == [
        "--precision fp32 (the study has bf16)",
        "--no-channels-last (the study trains in channels_last)",
    ]

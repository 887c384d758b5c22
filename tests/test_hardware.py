"""Hardware metrics: params, FLOPs, CPU peak memory, latency and the ONNX export, on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from flnas.evaluate import hardware as hw


class TinyNet(nn.Module):
    """conv-bn-relu, then a depthwise-separable block with batchnorm added back residually, then a head."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
            nn.Conv2d(8, 8, 1, bias=False),
            nn.BatchNorm2d(8),
        )
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(x.mean(dim=(2, 3)))


def _trained_like(model: nn.Module) -> nn.Module:
    """Give batchnorm non-trivial running statistics so export mistakes would show."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 16, 16) * 2 + 0.5)
    return model


def test_count_params_matches_hand_count():
    model = TinyNet(classes=5)
    stem = 3 * 8 * 9 + 8 + 2 * 8  # conv weight + bias, bn weight + bias
    block = 8 * 9 + 8 * 8 + 2 * 8  # depthwise, pointwise (no bias), bn
    head = 8 * 5 + 5
    assert hw.count_params(model) == stem + block + head


def test_count_params_counts_shared_weights_once():
    lin = nn.Linear(4, 4)
    assert hw.count_params(nn.Sequential(lin, lin)) == 20


@pytest.mark.parametrize(("groups", "stride"), [(1, 1), (3, 2)])
def test_flops_of_a_single_conv_follow_the_formula(groups, stride):
    conv = nn.Conv2d(3, 12, 3, stride=stride, padding=1, groups=groups)
    out = (12 + 2 - 3) // stride + 1
    expected = 2 * out * out * 12 * (3 // groups) * 3 * 3  # a multiply-add is 2 FLOPs, per image
    assert hw.count_flops(conv, 12) == expected
    assert hw.count_flops(conv, (12, 12), batch_size=3) == expected


def test_measurements_leave_the_model_mode_as_it_was():
    model = TinyNet()
    model.train()
    model.head.eval()  # a frozen part stays frozen
    hw.count_flops(model, 16)
    hw.peak_memory_mb(model, 16, "cpu")
    hw.latency(model, 16, "cpu", warmup=1, repeats=2)
    assert model.training and model.stem.training and not model.head.training


def test_cpu_peak_memory_is_weights_plus_live_tensors_and_deterministic():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    weights = (8 * 3 * 9 + 8) * 4
    x_bytes = 2 * 3 * 8 * 8 * 4
    y_bytes = 2 * 8 * 8 * 8 * 4
    mb = hw.peak_memory_mb(conv, 8, "cpu", batch_size=2)
    # input and output are alive together; nothing else is needed for one convolution
    assert mb * 2**20 == weights + x_bytes + y_bytes
    model = _trained_like(TinyNet())
    first = hw.peak_memory_mb(model, 32, "cpu")
    assert first == hw.peak_memory_mb(model, 32, "cpu")
    assert hw.peak_memory_mb(model, 64, "cpu") > first  # activations grow with the image


def test_latency_and_throughput_are_positive():
    model = TinyNet()
    stats = hw.latency(model, 16, "cpu", batch_size=2, warmup=1, repeats=3)
    assert stats["median_s"] > 0 and stats["per_image_s"] == pytest.approx(stats["median_s"] / 2)
    assert stats["cv"] >= 0 and stats["repeats"] == 3
    assert hw.throughput(model, 16, "cpu", batch_size=4, warmup=1, repeats=2) > 0


def test_onnx_export_matches_pytorch(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = _trained_like(TinyNet())
    model.train()
    path = hw.export_onnx(model, tmp_path / "tiny.onnx", 16)
    assert model.training  # exported in eval mode, left in training mode
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 16, 16)  # batch 5: the batch axis is dynamic
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    model.eval()
    with torch.inference_mode():
        want = model(x).numpy()
    assert got.shape == (5, 5)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)

    stats = hw.onnx_latency(path, 16, batch_size=2, threads=1, warmup=1, repeats=3)
    assert stats["median_s"] > 0 and stats["cv"] >= 0 and stats["threads"] == 1


@pytest.mark.slow
def test_dynamo_exporter_fallback_matches_pytorch(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = _trained_like(TinyNet()).eval()
    path = hw.export_onnx(model, tmp_path / "tiny.onnx", 16, exporter="dynamo")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 16, 16)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.inference_mode():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-4, rtol=1e-4)


def test_measure_hardware_reports_every_metric(tmp_path):
    model = TinyNet()
    result = hw.measure_hardware(
        model,
        16,
        "cpu",
        latency_batch_size=2,
        throughput_batch_size=4,
        repeats=3,
        onnx_path=tmp_path / "m.onnx",
    )
    assert result["params"] == hw.count_params(model)
    assert result["flops"] == hw.count_flops(model, 16) > 0
    assert result["peak_memory_mb"] > 0 and "cpu" in result["memory_method"]
    assert result["latency_s"] > 0 and result["latency_per_image_s"] == pytest.approx(result["latency_s"] / 2)
    assert result["throughput"] > 0 and result["onnx_latency_s"] > 0 and result["onnx_latency_cv"] >= 0
    assert result["device"] == "cpu"
    assert (tmp_path / "m.onnx").exists()

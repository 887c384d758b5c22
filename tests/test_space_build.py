"""build_model and to_pytorch_code: the network a spec describes, and the same network as source code."""

from __future__ import annotations

import ast
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from flnas.space import (
    ArchSpec,
    Choices,
    build_model,
    example_spec,
    random_spec,
    to_pytorch_code,
    validate_spec,
)
from flnas.space.build import Residual, group_count


def spec_of(*layers, head=None) -> ArchSpec:
    return ArchSpec.model_validate({"layers": list(layers), "head": head or {}})


@pytest.mark.parametrize("norm", ["batch", "group", "instance", "layer", "none"])
@pytest.mark.parametrize("layer_type", ["conv", "sepconv"])
def test_every_norm_builds_trains_and_keeps_shapes(norm, layer_type):
    spec = spec_of(
        {"type": "conv", "channels": 8, "stride": 2, "norm": norm},
        {"type": layer_type, "channels": 12, "kernel": 5, "norm": norm, "activation": "hardswish"},
    )
    model = build_model(spec, 4)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 4)
    out.sum().backward()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d | nn.GroupNorm | nn.InstanceNorm2d)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if norm == "none":
        assert not norms and all(c.bias is not None for c in convs)  # no norm: the convolution keeps a bias
    else:
        assert norms and all(c.bias is None for c in convs)


def test_norm_rules():
    spec = spec_of(
        {"type": "conv", "channels": 12, "norm": "group"},
        {"type": "conv", "channels": 24, "norm": "layer"},
        {"type": "conv", "channels": 6, "norm": "instance"},
    )
    model = build_model(spec, 3)
    group, layer, instance = (model.features[i][1] for i in range(3))
    assert isinstance(group, nn.GroupNorm) and group.num_groups == 4 == group_count(12)
    assert isinstance(layer, nn.GroupNorm) and layer.num_groups == 1 and layer.num_channels == 24
    assert isinstance(instance, nn.InstanceNorm2d) and instance.affine
    assert [group_count(c) for c in (1, 6, 8, 16, 24, 36)] == [1, 2, 8, 8, 8, 4]


def test_residual_identity_and_projection():
    spec = spec_of(
        {"type": "conv", "channels": 16},
        {"type": "conv", "channels": 16, "residual": True},  # same shape: identity
        {"type": "conv", "channels": 32, "stride": 2, "residual": True},  # projection with stride
        {"type": "sepconv", "channels": 32, "norm": "none", "residual": True, "activation": "none"},
    )
    model = build_model(spec, 2).eval()
    same, proj, sep = model.features[1], model.features[2], model.features[3]
    assert isinstance(same, Residual) and isinstance(same.shortcut, nn.Identity)
    conv, norm = proj.shortcut
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (16, 32, (1, 1), (2, 2))
    assert isinstance(norm, nn.BatchNorm2d)
    assert isinstance(sep.shortcut, nn.Identity) and isinstance(sep.act, nn.Identity)
    x = torch.randn(1, 16, 15, 15)
    assert proj.body(x).shape == proj.shortcut(x).shape == (1, 32, 8, 8)
    with torch.no_grad():  # the block really adds the shortcut: act(body(x) + shortcut(x))
        assert torch.allclose(proj(x), proj.act(proj.body(x) + proj.shortcut(x)))


def test_head_layout():
    spec = spec_of(
        {"type": "conv", "channels": 8},
        head={"pool": "max", "hidden": [32, 16], "dropout": 0.3, "activation": "gelu"},
    )
    kinds = [type(m).__name__ for m in build_model(spec, 5).head]
    assert kinds == [
        "AdaptiveMaxPool2d",
        "Flatten",
        "Dropout",
        "Linear",
        "GELU",
        "Dropout",
        "Linear",
        "GELU",
        "Dropout",
        "Linear",
    ]
    no_dropout = spec_of({"type": "conv", "channels": 8})
    assert [type(m).__name__ for m in build_model(no_dropout, 5).head] == [
        "AdaptiveAvgPool2d",
        "Flatten",
        "Linear",
    ]


def test_resnet_like_depth_builds_and_backpropagates():
    layers = [{"type": "conv", "channels": 16, "kernel": 3}]
    for channels in (16, 32, 64):
        for block in range(4):
            layers.append(
                {
                    "type": "conv",
                    "channels": channels,
                    "stride": 2 if block == 0 and channels > 16 else 1,
                    "residual": True,
                }
            )
    spec = spec_of(*layers)
    choices = Choices(max_layers=20)
    result = validate_spec(spec, choices, image_size=32, num_classes=8)
    assert result.ok, result.messages()
    assert spec.conv_count() == 13
    model = build_model(spec, 8)
    assert sum(isinstance(m, Residual) for m in model.features) == 12
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 8)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def _load_generated(code: str, class_name: str = "FLNASNet") -> type[nn.Module]:
    namespace: dict = {}
    exec(compile(code, "<generated>", "exec"), namespace)  # our own generated code, not LLM output
    return namespace[class_name]


def _generated_specs() -> list[ArchSpec]:
    specs = [
        example_spec(),
        spec_of(
            {"type": "sepconv", "channels": 16, "kernel": 5, "stride": 2, "norm": "none", "residual": True},
            {"type": "conv", "channels": 24, "norm": "layer", "activation": "gelu", "residual": True},
            {"type": "pool", "mode": "avg", "kernel": 2},
            {"type": "conv", "channels": 24, "norm": "instance", "activation": "relu6", "residual": True},
            {"type": "dropout", "p": 0.1},
            head={"pool": "max", "hidden": [32], "dropout": 0.0, "activation": "silu"},
        ),
    ]
    rng = np.random.default_rng(3)
    choices = Choices(max_layers=6, max_params=300_000)
    specs += [random_spec(choices, rng, image_size=32, num_classes=6) for _ in range(3)]
    return specs


@pytest.mark.parametrize("index", range(5))
def test_generated_code_builds_the_same_network(index):
    spec = _generated_specs()[index]
    code = to_pytorch_code(spec, 6)
    imports = [node for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert {ast.unparse(node) for node in imports} <= {"import torch", "from torch import nn"}
    assert "flnas." not in code  # nothing from flnas is referenced
    torch.manual_seed(0)
    ours = build_model(spec, 6).eval()
    theirs = _load_generated(code)().eval()
    assert theirs.count_params() == ours.count_params()
    assert list(theirs.state_dict()) == list(ours.state_dict())
    theirs.load_state_dict(ours.state_dict())  # strict: same keys and shapes
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(theirs(x), ours(x), atol=1e-6)


def test_generated_code_options():
    code = to_pytorch_code(example_spec(), 3, class_name="SkinNet")
    cls = _load_generated(code, "SkinNet")
    assert cls().head[-1].out_features == 3
    assert cls(num_classes=10)(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="not a Python identifier"):
        to_pytorch_code(example_spec(), 3, class_name="my net")


def test_onnx_export_matches_pytorch(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    spec = _generated_specs()[1]
    model = build_model(spec, 4).eval()
    x = torch.randn(2, 3, 32, 32)
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():  # the tracer warns about shape checks inside GroupNorm; harmless here
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-4)

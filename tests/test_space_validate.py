"""validate_spec: every problem at once, each with its JSON path and an actionable sentence."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from flnas.errors import SpecError
from flnas.space import ArchSpec, Choices, build_model, example_spec, spec_cost, validate_spec

CHOICES = Choices()


def base() -> dict:
    return {
        "layers": [
            {"type": "conv", "channels": 16, "kernel": 3, "stride": 2},
            {"type": "sepconv", "channels": 32, "kernel": 3, "stride": 2},
            {"type": "pool", "mode": "max", "kernel": 2},
            {"type": "conv", "channels": 32, "kernel": 3},
        ],
        "head": {"pool": "avg", "hidden": [64], "dropout": 0.1},
    }


def check(data, choices=CHOICES, image_size=32, num_classes=8):
    return validate_spec(data, choices, image_size=image_size, num_classes=num_classes)


def only(result, path):
    found = [issue for issue in result.errors if issue.path == path]
    assert found, f"no issue at {path}: {result.messages()}"
    return found[0].message


def test_valid_spec_in_every_input_form():
    for form in (base(), json.dumps(base()), ArchSpec.model_validate(base())):
        result = check(form)
        assert result.ok, result.messages()
        assert result.spec == ArchSpec.model_validate(base())
        assert result.params == build_model(result.spec, 8).count_params()
        assert result.flops > 0
    assert check(example_spec(), image_size=64).ok


def edit(path_fn):
    data = base()
    path_fn(data)
    return data


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            lambda d: d["layers"][1].update(kernel=9),
            "layers[1].kernel",
            "9 is not allowed by the Choices; choose one of 1, 3, 5, 7",
        ),
        (
            lambda d: d["layers"][0].update(channels=20),
            "layers[0].channels",
            "20 is not allowed by the Choices; choose one of 8, 16, 24",
        ),
        (
            lambda d: d["layers"][3].update(stride=3),
            "layers[3].stride",
            "3 is not allowed by the Choices; choose one of 1, 2",
        ),
        (
            lambda d: d["layers"][0].update(norm="bn"),
            "layers[0].norm",
            "\"bn\" is not allowed; use one of 'batch', 'group', 'instance', 'layer' or 'none'",
        ),
        (lambda d: d["layers"][0].update(activation="tanh"), "layers[0].activation", '"tanh" is not allowed'),
        (lambda d: d["layers"][0].update(kernel=4), "layers[0].kernel", "kernel 4 is even; use an odd size"),
        (
            lambda d: d["layers"][0].update(groups=2),
            "layers[0].groups",
            "unknown field; remove it (allowed fields: type, channels, kernel, stride, norm, activation, "
            "residual)",
        ),
        (lambda d: d["layers"][0].pop("channels"), "layers[0].channels", "required field is missing"),
        (
            lambda d: d["layers"][0].update(channels="wide"),
            "layers[0].channels",
            "Input should be a valid integer",
        ),
        (
            lambda d: d["layers"][2].update(type="attention"),
            "layers[2].type",
            '"attention" is not a layer type; use one of conv, sepconv, pool, dropout',
        ),
        (lambda d: d["layers"][2].pop("type"), "layers[2]", "the layer has no 'type'"),
        (lambda d: d["layers"].insert(0, 7), "layers[0]", "must be a JSON object"),
        (
            lambda d: d["layers"][2].update(kernel=5),
            "layers[2].kernel",
            "5 is not allowed by the Choices; choose one of 2, 3",
        ),
        (
            lambda d: d["layers"].append({"type": "dropout", "p": 0.7}),
            "layers[4].p",
            "0.7 is outside the Choices' dropout range; use a value from 0.0 to 0.5",
        ),
        (lambda d: d["head"].update(pool="median"), "head.pool", '"median" is not allowed'),
        (
            lambda d: d["head"].update(hidden=[64, 64, 64]),
            "head.hidden",
            "3 hidden layers is more than the Choices' maximum of 2",
        ),
        (lambda d: d["head"].update(hidden=[100]), "head.hidden[0]", "100 is not allowed by the Choices"),
        (
            lambda d: d["head"].update(dropout=0.8),
            "head.dropout",
            "0.8 is outside the Choices' dropout range",
        ),
        (lambda d: d.update(name="net"), "name", "unknown field; the architecture has only"),
        (lambda d: d.pop("layers"), "layers", "required field is missing"),
        (lambda d: d.update(layers=[]), "layers", "must contain at least one layer"),
        (
            lambda d: d.update(layers=d["layers"][:1]),
            "layers",
            "1 conv/sepconv layers is fewer than the Choices' minimum of 2; add conv or sepconv layers",
        ),
    ],
)
def test_each_invalid_spec_gives_its_path_and_message(change, path, message):
    result = check(edit(change))
    assert not result.ok
    assert message in only(result, path)


def test_choices_that_forbid_things():
    choices = Choices(residual=False, layer_types=["conv", "pool"], max_layers=2, max_total_layers=3)
    data = base()
    data["layers"][0]["residual"] = True
    data["layers"].append({"type": "conv", "channels": 32})
    result = check(data, choices)
    assert "residual connections are not allowed by the Choices" in only(result, "layers[0].residual")
    assert 'layer type "sepconv" is not allowed by the Choices; choose one of conv, pool' in only(
        result, "layers[1].type"
    )
    messages = [e.message for e in result.errors if e.path == "layers"]
    assert any("4 conv/sepconv layers is more than the Choices' maximum of 2" in m for m in messages)
    assert any("5 layers in total is more than the Choices' maximum of 3" in m for m in messages)


def test_every_problem_is_reported_at_once():
    data = base()
    data["layers"][0].update(
        kernel=9, norm="bn"
    )  # one bad Choices value + one schema error in the same layer
    data["layers"][1]["channels"] = 33
    data["layers"][2]["type"] = "attention"
    data["head"].update(pool="median", hidden=[100])
    data["extra"] = 1
    result = check(data)
    assert result.spec is None and not result.ok
    paths = {issue.path for issue in result.errors}
    assert {
        "layers[0].kernel",
        "layers[0].norm",
        "layers[1].channels",
        "layers[2].type",
        "head.pool",
        "head.hidden[0]",
        "extra",
    } <= paths


def test_invalid_json_string_and_non_objects():
    result = check('{"layers": [')
    assert [issue.path for issue in result.errors] == ["$"]
    assert "not valid JSON" in result.errors[0].message and "line 1" in result.errors[0].message
    for bad in ("[1, 2]", [1, 2], 3):
        result = check(bad)
        assert result.errors[0].path == "$" and "must be a JSON object" in result.errors[0].message


def test_param_budget_overrun():
    data = base()
    data["layers"][3]["channels"] = 256
    data["head"]["hidden"] = [512, 512]
    cost = spec_cost(ArchSpec.model_validate(data), 8, 32)
    result = check(data, Choices(max_params=100_000))
    assert result.params == cost["params"] > 100_000
    assert f"the network has {cost['params']:,} parameters, over the budget of 100,000" in only(result, "$")
    assert check(data, Choices(max_params=None)).ok


def test_flops_budget():
    result = check(base(), Choices(max_flops=1000))
    assert f"the network needs {result.flops:,} FLOPs per image at input size 32" in only(result, "$")


def test_shape_shrink_below_one_pixel():
    data = {"layers": [{"type": "conv", "channels": 8, "stride": 2} for _ in range(7)]}
    result = check(data, image_size=32)  # 32 -> 16 -> 8 -> 4 -> 2 -> 1, the 6th and 7th cannot shrink it
    shrink = [issue for issue in result.errors if "below 1x1" in issue.message]
    assert [issue.path for issue in shrink] == ["layers[5]", "layers[6]"]
    assert str(shrink[0]) == (
        "layers[5]: stride 2 would shrink the 1x1 feature map below 1x1 at input size 32; "
        "use stride 1 or remove an earlier downsampling layer"
    )
    assert check(data, image_size=128).ok  # the same spec fits a larger input


def test_pool_and_instance_norm_need_room():
    data = {
        "layers": [
            {"type": "conv", "channels": 8, "stride": 2},
            {"type": "pool", "kernel": 3},
            {"type": "conv", "channels": 8, "norm": "instance"},
            {"type": "pool", "kernel": 2},
        ]
    }
    result = check(data, image_size=8)  # 8 -> 4 -> 1
    assert "instance norm needs a feature map larger than 1x1" in only(result, "layers[2].norm")
    assert "pool kernel 2 would shrink the 1x1 feature map below 1x1 at input size 8" in only(
        result, "layers[3]"
    )


def test_raise_if_invalid():
    assert check(base()).raise_if_invalid() == ArchSpec.model_validate(base())
    bad = edit(lambda d: d["layers"][1].update(kernel=9))
    with pytest.raises(SpecError, match=r"^net.json: 1 problem: layers\[1\].kernel: 9 is not allowed"):
        check(bad).raise_if_invalid("net.json")


COST_SPECS = [
    base(),
    {
        "layers": [
            {"type": "sepconv", "channels": 24, "kernel": 5, "stride": 2, "norm": "none", "residual": True},
            {"type": "conv", "channels": 24, "kernel": 1, "norm": "group", "residual": True},
            {"type": "conv", "channels": 48, "kernel": 7, "stride": 2, "norm": "layer", "residual": True},
            {"type": "pool", "mode": "avg", "kernel": 3},
            {"type": "sepconv", "channels": 16, "norm": "instance", "activation": "none"},
        ],
        "head": {"pool": "max", "hidden": [32, 64], "dropout": 0.0, "activation": "gelu"},
    },
]


@pytest.mark.parametrize("data", COST_SPECS)
def test_spec_cost_matches_the_built_model(data):
    spec = ArchSpec.model_validate(data)
    cost = spec_cost(spec, 5, 40)
    model = build_model(spec, 5).eval()
    assert cost["params"] == model.count_params()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 40, 40))
    assert cost["flops"] == counter.get_total_flops()


def test_dry_run_catches_an_output_that_does_not_fit(monkeypatch):
    import flnas.space.validate as validate_module

    monkeypatch.setattr(validate_module, "dry_run", lambda spec, n, s: (1, n + 1))
    result = check(base())
    assert "the output shape is (1, 9), expected (1, 8)" in only(result, "$")
    monkeypatch.setattr(validate_module, "dry_run", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    assert "the network fails on a 1x3x32x32 input (RuntimeError: boom)" in only(check(base()), "$")


def test_validation_does_not_modify_its_input():
    data = base()
    before = copy.deepcopy(data)
    check(data)
    assert data == before

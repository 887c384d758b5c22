"""The architecture format (ArchSpec), its canonical key, and the Choices file."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from flnas.errors import SpecError
from flnas.space import ArchSpec, Choices, example_spec, load_choices, spec_key
from flnas.space.choices import DEFAULT_CHOICES_PATH
from flnas.space.spec import EXAMPLE_SPEC_PATH

DESIGN_EXAMPLE = {
    "layers": [
        {
            "type": "conv",
            "channels": 32,
            "kernel": 3,
            "stride": 1,
            "norm": "batch",
            "activation": "relu",
            "residual": False,
        },
        {
            "type": "sepconv",
            "channels": 64,
            "kernel": 5,
            "stride": 2,
            "norm": "group",
            "activation": "silu",
            "residual": False,
        },
        {"type": "pool", "mode": "max", "kernel": 2},
        {"type": "dropout", "p": 0.2},
    ],
    "head": {"pool": "avg", "hidden": [128], "dropout": 0.2, "activation": "relu"},
}


def test_design_md_example_parses_and_round_trips():
    spec = ArchSpec.model_validate(DESIGN_EXAMPLE)
    assert [layer.type for layer in spec.layers] == ["conv", "sepconv", "pool", "dropout"]
    dumped = spec.model_dump(mode="json")
    assert dumped == DESIGN_EXAMPLE
    assert ArchSpec.model_validate_json(json.dumps(dumped)) == spec


def test_defaults_are_filled_in():
    spec = ArchSpec.model_validate({"layers": [{"type": "conv", "channels": 16}]})
    layer = spec.layers[0]
    assert (layer.kernel, layer.stride, layer.norm, layer.activation, layer.residual) == (
        3,
        1,
        "batch",
        "relu",
        False,
    )
    assert spec.head.model_dump() == {"pool": "avg", "hidden": [], "dropout": 0.0, "activation": "relu"}
    assert spec.conv_count() == 1


def test_spec_key_is_canonical():
    short = {"layers": [{"channels": 16, "type": "conv"}], "head": {"pool": "avg"}}
    full = {
        "head": {"activation": "relu", "dropout": 0.0, "hidden": [], "pool": "avg"},
        "layers": [
            {
                "type": "conv",
                "channels": 16,
                "kernel": 3,
                "stride": 1,
                "norm": "batch",
                "activation": "relu",
                "residual": False,
            }
        ],
    }
    assert spec_key(short) == spec_key(full) == spec_key(ArchSpec.model_validate(full))
    other = dict(full, layers=[dict(full["layers"][0], kernel=5)])
    assert spec_key(other) != spec_key(full)
    assert json.loads(spec_key(full)) == ArchSpec.model_validate(full).model_dump(mode="json")


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"type": "conv", "channels": 16, "dilation": 2}, "dilation"),
        ({"type": "conv", "channels": 16, "kernel": 4}, "kernel"),
        ({"type": "conv", "channels": 0}, "channels"),
        ({"type": "dropout", "p": 1.0}, "p"),
        ({"type": "pool", "mode": "median"}, "mode"),
    ],
)
def test_schema_rejects_bad_layers(layer, field):
    with pytest.raises(ValidationError) as info:
        ArchSpec.model_validate({"layers": [layer]})
    assert field in str(info.value)


def test_json_schema_is_what_an_llm_needs():
    schema = ArchSpec.model_json_schema()
    assert schema["title"] == "ArchSpec"
    assert schema["additionalProperties"] is False
    conv = schema["$defs"]["ConvLayer"]
    assert conv["additionalProperties"] is False
    assert set(conv["required"]) == {"type", "channels"}
    assert all("description" in prop for prop in conv["properties"].values())
    assert conv["properties"]["norm"]["enum"] == ["batch", "group", "instance", "layer", "none"]
    layers = schema["properties"]["layers"]["items"]
    assert layers["discriminator"]["propertyName"] == "type"
    assert set(layers["discriminator"]["mapping"]) == {"conv", "sepconv", "pool", "dropout"}


def test_example_spec_is_the_packaged_json():
    assert example_spec() == ArchSpec.model_validate(json.loads(EXAMPLE_SPEC_PATH.read_text()))
    assert example_spec().conv_count() >= 2


def test_default_choices_mirror_the_yaml_and_are_json():
    choices = load_choices(None)
    assert choices == Choices()  # the YAML and the model defaults agree
    dumped = choices.model_dump(mode="json")
    assert json.loads(json.dumps(dumped)) == dumped
    assert dumped["max_params"] == 2_000_000 and dumped["max_latency_s"] is None
    assert set(dumped["norms"]) == {"batch", "group", "instance", "layer", "none"}
    assert DEFAULT_CHOICES_PATH.name == "default_choices.yaml"


def test_choices_from_json_and_yaml(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"kernels": [3], "max_params": 500000}))
    (tmp_path / "c.yml").write_text("kernels: [3, 5]\nmax_latency_s: 0.01\n")
    from_json = load_choices(tmp_path / "c.json")
    from_yaml = load_choices(str(tmp_path / "c.yml"))
    assert from_json.kernels == [3] and from_json.max_params == 500_000
    assert from_json.channels == Choices().channels  # unspecified fields keep their defaults
    assert from_yaml.kernels == [3, 5] and from_yaml.max_latency_s == 0.01


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kernels: [3, 4]\n", "kernels must be odd (got 4)"),
        ("min_layers: 5\nmax_layers: 3\n", "min_layers 5 is more than max_layers 3"),
        ("dropout_min: 0.6\ndropout_max: 0.2\n", "dropout_min 0.6 is more than dropout_max 0.2"),
        ("kernal: [3]\n", "field 'kernal': unknown field"),
        ("norms: [batch, bn]\n", "field 'norms.1'"),
        ("max_params: -3\n", "field 'max_params'"),
        ("channels: [\n", "not valid YAML"),
        ("- 1\n- 2\n", "must be a mapping"),
    ],
)
def test_bad_choices_file_names_file_and_field(tmp_path, text, expected):
    path = tmp_path / "choices.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_choices(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_choices_file(tmp_path):
    with pytest.raises(SpecError, match="Choices file not found"):
        load_choices(tmp_path / "nope.yaml")

"""The Template narrowed by the Choices (what constrained decoding and the prompt get), and absurd input.

The schema is checked with the ``jsonschema`` package: every spec the Choices allow validates against it,
and a value outside the Choices does not, so a server that decodes by the schema cannot emit one.
"""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from flnas.space import load_choices, random_spec, read_spec_file, validate_spec
from flnas.space.schema import choices_schema, template_schema
from flnas.space.spec import EXAMPLE_SPEC_PATH

CHOICES = load_choices(None).model_copy(
    update={
        "channels": [8, 16, 32],
        "kernels": [1, 3],
        "strides": [1, 2],
        "norms": ["batch", "none"],
        "activations": ["relu", "silu"],
        "residual": False,
        "pool_kernels": [2],
        "dropout_max": 0.3,
        "head_hidden": [64],
        "max_head_layers": 1,
        "layer_types": ["conv", "pool", "dropout"],
        "min_layers": 2,
        "max_total_layers": 6,
    }
)


def validator(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_plain_template_accepts_what_pydantic_accepts():
    check = validator(template_schema())
    assert check.is_valid(json.loads(EXAMPLE_SPEC_PATH.read_text()))
    assert "title" not in template_schema()["$defs"]["ConvLayer"]["properties"]["channels"]


def test_every_spec_the_choices_allow_fits_the_schema():
    check = validator(choices_schema(CHOICES))
    rng = np.random.default_rng(0)
    for _ in range(40):
        spec = random_spec(CHOICES, rng, image_size=32, num_classes=3).model_dump(mode="json")
        assert validate_spec(spec, CHOICES, image_size=32, num_classes=3, dry_run_forward=False).ok
        assert check.is_valid(spec), list(check.iter_errors(spec))[0].message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("layers", 0, "channels"), 24),
        (("layers", 0, "kernel"), 5),
        (("layers", 0, "norm"), "group"),
        (("layers", 0, "activation"), "gelu"),
        (("layers", 0, "residual"), True),
        (("layers", 0, "type"), "sepconv"),
        (("layers", 1, "kernel"), 3),
        (("layers", 2, "p"), 0.4),
        (("head", "hidden"), [128]),
        (("head", "hidden"), [64, 64]),
        (("head", "dropout"), 0.5),
        (("layers",), [{"type": "conv", "channels": 8}]),
        (("layers",), [{"type": "conv", "channels": 8}] * 7),
    ],
)
def test_a_value_outside_the_choices_fails_the_schema_and_the_validator(path, value):
    spec = {
        "layers": [
            {"type": "conv", "channels": 8, "kernel": 3, "stride": 2},
            {"type": "pool", "kernel": 2},
            {"type": "dropout", "p": 0.1},
            {"type": "conv", "channels": 16},
        ],
        "head": {"hidden": [64], "dropout": 0.1},
    }
    check = validator(choices_schema(CHOICES))
    assert check.is_valid(spec)
    target = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not check.is_valid(spec)
    assert not validate_spec(spec, CHOICES, image_size=32, num_classes=3).ok  # the same verdict


def test_absurd_specs_are_refused_at_once_by_their_size():
    """Only the size problem is reported: no layer was looked at (which took 14 s for 10,000 layers)."""
    layers = {"layers": [{"type": "conv", "channels": 8}] * 10_000}
    result = validate_spec(layers, load_choices(None), image_size=32, num_classes=3)
    assert [str(e) for e in result.errors] == [
        "layers: 10000 layers in total is more than the Choices' maximum of 32; remove pool, dropout or conv layers"
    ]
    wide = {"layers": [{"type": "conv", "channels": 8}] * 2, "head": {"hidden": [7] * 20_000}}
    result = validate_spec(wide, load_choices(None), image_size=32, num_classes=3)
    assert [e.path for e in result.errors] == ["head.hidden"]
    assert len(str(result.errors)) < 500


def test_deeply_nested_spec_file_is_one_error(tmp_path):
    from flnas.errors import SpecError

    path = tmp_path / "d.json"
    path.write_text('{"layers":' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(SpecError, match="d.json: spec file holds JSON nested too deeply"):
        read_spec_file(path)
    path.write_text('{"layers":' + "[" * 100 + "]" * 100 + "}")  # readable, but refused by its depth at once
    result = validate_spec(read_spec_file(path), load_choices(None), image_size=32, num_classes=3)
    assert [str(e) for e in result.errors] == ["$: nested more than 8 levels deep; an architecture needs 4"]
    deep = {"layers": [[[[[[[[[[1]]]]]]]]]]}
    assert "nested more than" in validate_spec(deep, load_choices(None), image_size=32, num_classes=3).errors[0].message


def test_cli_refuses_deep_and_huge_specs_in_one_sentence(tmp_path, capsys):
    from flnas.cli.main import main

    deep = tmp_path / "d.json"
    deep.write_text('{"layers":' + "[" * 50_000 + "]" * 50_000 + "}")
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"layers": [{"type": "conv", "channels": 8}] * 10_000}))
    for args, expected in (
        (["space", "validate", str(deep)], "d.json: spec file holds JSON nested too deeply"),
        (["space", "params", str(deep)], "d.json: spec file holds JSON nested too deeply"),
        (["evaluate", str(deep)], "d.json: spec file holds JSON nested too deeply"),
        (["evaluate", str(huge), "--data", str(tmp_path / "no-data")], "10000 layers in total is more than"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
        out, err = capsys.readouterr()
        assert exc.value.code == 2, (args, out, err)
        assert expected in " ".join(err.split()) and "Traceback" not in err

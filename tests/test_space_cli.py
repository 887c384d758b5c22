"""`flnas space schema | example | choices | validate | to-pytorch | params`."""

from __future__ import annotations

import json

import pytest
import torch

from flnas.cli.main import main
from flnas.space import ArchSpec, build_model, example_spec


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["space", *args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture()
def spec_file(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(example_spec().model_dump(mode="json")))
    return path


@pytest.fixture()
def bad_file(tmp_path):
    data = example_spec().model_dump(mode="json")
    data["layers"][0]["kernel"] = 9
    data["layers"][1]["norm"] = "bn"
    data["head"]["hidden"] = [100]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def test_schema(capsys):
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert json.loads(out) == ArchSpec.model_json_schema()


def test_example(capsys):
    code, out, _ = run(capsys, "example")
    assert code == 0 and ArchSpec.model_validate(json.loads(out)) == example_spec()


def test_choices_default_and_file(capsys, tmp_path):
    code, out, _ = run(capsys, "choices")
    assert code == 0 and json.loads(out)["max_params"] == 2_000_000
    path = tmp_path / "c.yaml"
    path.write_text("kernels: [3]\nmax_params: 1000\n")
    code, out, _ = run(capsys, "choices", "--choices", str(path))
    assert json.loads(out)["kernels"] == [3] and json.loads(out)["max_params"] == 1000
    path.write_text("kernels: [4]\n")
    code, out, err = run(capsys, "choices", "--choices", str(path))
    assert code == 2 and "kernels must be odd" in err and str(path) in " ".join(err.split())


def test_validate_valid(capsys, spec_file):
    code, out, _ = run(capsys, "validate", str(spec_file))
    params = build_model(example_spec(), 8).count_params()
    assert code == 0 and out.startswith("valid:") and f"{params:,} parameters" in out
    code, out, _ = run(
        capsys, "validate", str(spec_file), "--json", "--image-size", "32", "--num-classes", "3"
    )
    report = json.loads(out)
    assert report["valid"] is True and report["errors"] == []
    assert report["params"] == build_model(example_spec(), 3).count_params()


def test_validate_lists_every_issue(capsys, bad_file):
    code, out, _ = run(capsys, "validate", str(bad_file))
    assert code == 1
    assert out.splitlines()[0] == "invalid: 3 problems"
    assert "layers[0].kernel: 9 is not allowed by the Choices; choose one of 1, 3, 5, 7" in out
    assert "layers[1].norm:" in out and "head.hidden[0]:" in out
    code, out, _ = run(capsys, "validate", str(bad_file), "--json")
    report = json.loads(out)
    assert code == 1 and report["valid"] is False
    assert [e["path"] for e in report["errors"]] == ["layers[0].kernel", "layers[1].norm", "head.hidden[0]"]


def test_validate_budget_from_choices(capsys, spec_file, tmp_path):
    tight = tmp_path / "tight.json"
    tight.write_text(json.dumps({"max_params": 1000}))
    code, out, _ = run(capsys, "validate", str(spec_file), "--choices", str(tight))
    assert code == 1 and "over the budget of 1,000" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "spec file not found"),
        ('{"layers": [', "spec file is not valid JSON (Expecting value at line 1 column 13)"),
        # issue 13 item 12: a JSON string was reported as "not valid JSON"
        ('"hello"', 'spec file holds a JSON string, not an object; an architecture is a JSON object with keys'),
        ('"{\\"layers\\": []}"', "(it holds an architecture written as a quoted string: write the object itself)"),
        ("[1, 2]", "spec file holds a JSON array, not an object"),
        ("null", "spec file holds JSON null, not an object"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "to-pytorch", "params"])
def test_missing_or_malformed_file_is_one_error_line(capsys, tmp_path, content, message, command):
    path = tmp_path / "x.json"
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, command, str(path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {path}: ") and message in err


def test_a_byte_order_mark_is_accepted_in_spec_and_choices_files(capsys, tmp_path, spec_file):
    """CSV files with a UTF-8 BOM were read, JSON spec and Choices files with one refused: now all are read."""
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + spec_file.read_bytes())
    code, out, err = run(capsys, "validate", str(bom))
    assert code == 0 and out.startswith("valid:"), err
    choices = tmp_path / "choices.json"
    choices.write_bytes(b'\xef\xbb\xbf{"max_params": 123456}')
    code, out, err = run(capsys, "choices", "--choices", str(choices))
    assert code == 0 and json.loads(out)["max_params"] == 123456, err


def test_a_choices_file_that_is_not_text_is_one_error_line(capsys, tmp_path):
    path = tmp_path / "choices.json"
    path.write_bytes(b"\xff\xfe\x00binary")
    code, _, err = run(capsys, "choices", "--choices", str(path))
    assert code == 2 and "Choices file is not UTF-8 text" in err and "Traceback" not in err


def test_to_pytorch(capsys, spec_file):
    code, out, _ = run(capsys, "to-pytorch", str(spec_file), "--num-classes", "5", "--class-name", "Net")
    assert code == 0
    namespace: dict = {}
    exec(compile(out, "<generated>", "exec"), namespace)  # our own generated code
    model = namespace["Net"]()
    assert model.count_params() == build_model(example_spec(), 5).count_params()
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
    code, _, err = run(capsys, "to-pytorch", str(spec_file), "--class-name", "my net")
    assert code == 2 and "not a Python identifier" in err


def test_to_pytorch_rejects_a_schema_invalid_spec(capsys, bad_file):
    code, out, err = run(capsys, "to-pytorch", str(bad_file))
    assert code == 2 and out == ""
    assert "not a valid architecture" in err and "flnas space validate" in " ".join(err.split())


def test_params(capsys, spec_file):
    code, out, _ = run(capsys, "params", str(spec_file), "--json", "--num-classes", "4")
    report = json.loads(out)
    assert code == 0 and report["params"] == build_model(example_spec(), 4).count_params()
    assert report["flops"] > 0

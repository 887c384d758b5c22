"""Data and numbers that load but cannot give a meaningful result: refused up front or warned about.

Issue 13 items 9 and 11: `--subset 1`/`2` used to train with empty validation and test splits ("ok"), a
one-class set trained to 100% without a word, a header-only metadata CSV gave "sex balanced (male 0,
female 0)", `--subset` larger than the data was silently ignored by `evaluate`, and `--patience -1` and
`--seed -1` were accepted (the second ended in a numpy traceback).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from flnas.cli.main import main
from flnas.data.isic import GROUND_TRUTH, METADATA


def run(argv: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from flnas.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("degenerate") / "data", n=24, seed=3, image_size=16)


@pytest.fixture()
def data(base, tmp_path) -> Path:
    """A fresh copy of a 24-record synthetic set that a test may change."""
    return Path(shutil.copytree(base, tmp_path / "data"))


@pytest.fixture()
def spec(tmp_path) -> Path:
    from flnas.space import example_spec

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(example_spec().model_dump(mode="json")))
    return path


def rewrite(path: Path, edit) -> None:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    rows = edit(rows)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def one_class(rows: list[list[str]]) -> list[list[str]]:
    """Every ground-truth row one-hot on the first class column (MEL)."""
    header, body = rows[0], rows[1:]
    return [header] + [[r[0], "1.0", *(["0.0"] * (len(header) - 2))] for r in body]


def evaluate_argv(spec: Path, data: Path, tmp_path: Path, *flags) -> list:
    return ["evaluate", spec, "--data", data, "--image-size", "16", "--cache-dir", tmp_path / "cache",
            "--epochs", "1", "--no-hardware", *flags]


@pytest.mark.parametrize(("subset", "sizes"), [(1, "1 train, 0 validation and 0 test"), (2, "2 train, 0 validation")])
def test_evaluate_refuses_a_split_without_validation_or_test_records(spec, data, tmp_path, capsys, subset, sizes):
    code, out, err = run(evaluate_argv(spec, data, tmp_path, "--subset", subset), capsys)
    assert code == 2, err
    assert f"the {subset} records split into {sizes}" in err and "a larger --subset" in err
    assert "Traceback" not in err and "Train Loss" not in out + err  # refused before any training


def test_search_refuses_it_before_the_study_stores_a_setup(data, tmp_path, capsys):
    from flnas.study.storage import get_setup, open_study

    db = tmp_path / "s.db"
    argv = ["search", "--data", data, "--subset", "2", "--designer", "random", "--iters", "1", "--image-size", "16",
            "--cache-dir", tmp_path / "cache", "--storage", db, "--study", "tiny", "--out", tmp_path / "run"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "the 2 records split into 2 train, 0 validation and 0 test records" in err
    assert get_setup(open_study("tiny", str(db))) is None  # a rerun with a larger --subset is not blocked


def test_one_class_data_is_warned_about_and_refused_for_training(spec, data, tmp_path, capsys):
    rewrite(data / GROUND_TRUTH, one_class)
    code, out, _ = run(["data", "summary", "--data", data, "--cache-dir", tmp_path / "cache", "--no-progress"],
                       capsys)
    assert code == 0 and "warning: every record is of class MEL" in " ".join(out.split())
    code, out, _ = run(["data", "summary", "--data", data, "--cache-dir", tmp_path / "cache", "--json"], capsys)
    assert any("every record is of class MEL" in w for w in json.loads(out)["warnings"])
    code, _, err = run(evaluate_argv(spec, data, tmp_path), capsys)
    assert code == 2 and "training records are of class MEL; a classifier needs at least two classes" in err


def test_header_only_metadata_is_warned_about_not_called_balanced(data, tmp_path, capsys):
    rewrite(data / METADATA, lambda rows: rows[:1])
    argv = ["data", "summary", "--data", data, "--subset", "12", "--cache-dir", tmp_path / "cache", "--json"]
    code, out, _ = run(argv, capsys)
    summary = json.loads(out)
    assert code == 0
    assert any("no record has a known sex or age" in w for w in summary["warnings"])
    note = summary["subset"]["note"]
    assert "sex unknown for every record" in note and "age unknown for every record" in note
    assert "balanced (male 0, female 0)" not in note


def test_evaluate_says_when_the_subset_is_larger_than_the_data(spec, data, tmp_path, capsys):
    code, _, err = run(evaluate_argv(spec, data, tmp_path, "--subset", "1000"), capsys)
    assert code == 0, err
    assert "--subset 1000 asks for more records than the 24 available; all 24 are used" in " ".join(err.split())


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--patience", "-1"), ("--epochs", "0"), ("--batch-size", "0"), ("--seed", "-1"), ("--subset", "0"),
     ("--image-size", "4"), ("--lr", "-0.1")],
)
def test_out_of_range_numbers_are_usage_errors(spec, data, tmp_path, capsys, flag, value):
    code, _, err = run(evaluate_argv(spec, data, tmp_path, flag, value), capsys)
    assert code == 2 and f"Invalid value for '{flag}'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [["search", "--iters", "0"], ["search", "--seed", "-5"], ["search", "--max-train-seconds", "-1"],
     ["data", "summary", "--seed", "-1"], ["data", "synth", "--out", "x", "--bias", "2"],
     ["baselines", "--patience", "-2"], ["experiment", "--subset", "-3"]],
)
def test_other_commands_bound_their_numbers_too(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # were a bound missing, the command would run: keep its files out of the repo
    code, _, err = run(argv, capsys)
    assert code == 2 and "Invalid value for" in err and "Traceback" not in err


def test_library_config_check_refuses_a_negative_patience():
    from flnas.errors import FlnasError
    from flnas.evaluate import EvaluatorConfig
    from flnas.evaluate.evaluator import check_config

    with pytest.raises(FlnasError, match="patience must be 0"):
        check_config(EvaluatorConfig(patience=-1))

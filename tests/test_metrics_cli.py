"""`flnas metrics`: the table, the --json shape, and one-line errors (exit code 2) for bad input."""

from __future__ import annotations

import json

import pytest

from flnas.cli.main import main

WORKED_CSV = """image,y_true,y_pred,sex,age_approx
ISIC_1,A,A,male,25
ISIC_2,A,B,male,40
ISIC_3,B,B,male,70
ISIC_4,C,C,male,50
ISIC_5,A,A,female,20
ISIC_6,B,A,female,45
ISIC_7,B,B,female,
ISIC_8,C,A,,68
"""


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture
def worked(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text(WORKED_CSV)
    return path


def test_table(worked, capsys):
    code, out, _ = run(["metrics", "--predictions", str(worked)], capsys)
    assert code == 0
    for text in ("62.50%", "0.1917", "0.7500", "0.8333", "0.1736", "male|female", "young|old", "n/a"):
        assert text in out
    assert "sorted names seen" in out and "A, B, C" in out


def test_json_shape(worked, capsys):
    code, out, _ = run(["metrics", "--predictions", str(worked), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    for key in ("accuracy", "unfairness", "eodd", "eopp1", "eopp2", "balanced_accuracy", "groups", "pairs"):
        assert key in data
    assert data["accuracy"] == pytest.approx(0.625)
    assert data["eodd"] == pytest.approx(0.75)
    assert data["groups"]["middle"] == {"accuracy": pytest.approx(1 / 3), "count": 3}
    assert list(data["pairs"]) == ["male|female", "young|middle", "young|old", "middle|old"]
    assert data["pairs"]["young|old"] == {"eodd": None, "eopp1": None, "eopp2": 0.0}
    assert data["classes_from"] == "names seen"


def test_classes_option_and_indices(tmp_path, capsys):
    path = tmp_path / "idx.csv"
    path.write_text("y_true,y_pred,sex,age_approx\n0,0,male,20\n1,1,male,70\n0,1,female,40\n1,1,female,\n")
    code, out, _ = run(["metrics", "-p", str(path), "--json"], capsys)
    assert code == 0 and json.loads(out)["classes"] == ["0", "1"]
    code, out, _ = run(["metrics", "-p", str(path), "--json", "--classes", "MEL,NV,BCC"], capsys)
    data = json.loads(out)
    assert code == 0 and data["classes"] == ["MEL", "NV", "BCC"] and data["classes_from"] == "given"
    # NV's TNR is 1 for the men, 0 for the women; BCC never occurs, but it is a class: its TNR gap (0)
    # counts in EOPP2, which the inferred class list [0, 1] would not do
    assert data["pairs"]["male|female"]["eopp2"] == pytest.approx((0 + 1 + 0) / 3)
    inferred = json.loads(run(["metrics", "-p", str(path), "--json"], capsys)[1])
    assert inferred["pairs"]["male|female"]["eopp2"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "predictions file not found"),
        ("", "file is empty"),
        ("y_true,y_pred,sex,age_approx\n", "has no prediction rows"),
        ("y_true,y_pred,age_approx\n0,0,20\n", "missing column(s) sex"),
        ("y_true,y_pred,sex,age_approx\n0,0,male,20\n1,1,male,30,extra,cells\n", "malformed CSV"),
        (
            "y_true,y_pred,sex,age_approx\n0,0,male,20\n1,1,alien,30\n",
            "line 3: column sex has unknown value 'alien'",
        ),
        ("y_true,y_pred,sex,age_approx\n0,0,male,twenty\n", "line 2: column age_approx has 'twenty'"),
        ("y_true,y_pred,sex,age_approx\n0,0,male,inf\n", "line 2: column age_approx has 'inf', not an age in years"),
        ("y_true,y_pred,sex,age_approx\n0,0,male,20\n0,0,male,-5\n", "line 3: column age_approx has '-5'"),
        ("y_true,y_pred,sex,age_approx\n0,,male,20\n", "line 2: column y_pred is empty"),
        # issue 13 item 1: an index sized the class list 0..max (this row took 24 GB before the kernel killed it)
        (
            "image,y_true,y_pred,sex,age_approx\na1,0,0,male,50\na2,1,0,female,25\na3,2,99999999999,male,70\n",
            "line 4: column y_pred has class index 99999999999, above 999, the largest class index supported",
        ),
        ("y_true,y_pred,sex,age_approx\n0,0,male,20\n1," + "9" * 400 + ",male,30\n", "(400 characters)"),
        ("y_true,y_pred,sex,age_approx\n0,0,male,20\n-1,0,male,30\n", "line 3: column y_true has class index -1"),
        # numbers that are not indices were silently taken as class names
        ("y_true,y_pred,sex,age_approx\n0,0,male,20\n1,nan,male,30\n", "line 3: column y_pred has 'nan', a number"),
        ("y_true,y_pred,sex,age_approx\n1.5,0,male,20\n", "line 2: column y_true has '1.5', a number that is not"),
        ("y_true,y_pred,sex,age_approx\nMEL,MEL,male,20\nNV,inf,male,30\n", "column y_pred has 'inf', a number"),
        ("y_true,y_pred,sex,age_approx\nMEL,MEL,male,20\nNV,1,male,30\n", "line 3: column y_pred has the class index"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    code, out, err = run(["metrics", "--predictions", str(path)], capsys)
    assert code == 2
    assert message in err and "bad.csv" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_class_with_classes_option(worked, capsys):
    code, _, err = run(["metrics", "-p", str(worked), "--classes", "A,B"], capsys)
    assert code == 2 and "line 5: column y_true has class 'C', not one of A, B" in err


def test_numeric_names_are_accepted_when_classes_names_them(tmp_path, capsys):
    path = tmp_path / "odd.csv"
    path.write_text("y_true,y_pred,sex,age_approx\n1.5,1.5,male,20\nA,1.5,female,30\n")
    code, out, _ = run(["metrics", "-p", str(path), "--json", "--classes", "A,1.5"], capsys)
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(0.5)


@pytest.mark.parametrize("rows", ["0,999", "0,99999999999", "names"])
def test_memory_stays_bounded_whatever_the_labels(tmp_path, rows):
    """No array is sized by a label's value: the largest class list allowed (1,000) costs well under 64 MB,
    and a larger index is refused before anything is allocated for it."""
    import tracemalloc

    from flnas.errors import FlnasError
    from flnas.evaluate.predictions import MAX_CLASSES, fairness_from_predictions, read_predictions

    path = tmp_path / "p.csv"
    if rows == "names":  # one more distinct class name than allowed
        body = "".join(f"c{i},c{i},male,20\n" for i in range(MAX_CLASSES + 1))
    else:
        body = "".join(f"{r},{r},female,40\n" for r in rows.split(","))
    path.write_text("y_true,y_pred,sex,age_approx\n" + body)
    df = read_predictions(path)
    tracemalloc.start()
    try:
        if rows == "0,999":
            assert len(fairness_from_predictions(df)["classes"]) == MAX_CLASSES
        else:
            with pytest.raises(FlnasError, match="supported"):
                fairness_from_predictions(df)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < (64 if rows == "0,999" else 1) * 2**20


def test_bootstrap_memory_stays_bounded_at_the_class_limit(tmp_path):
    """--ci held every resample's confusion tables at once: 48 MB each at 1,000 classes, 48 GB for the default
    1,000 resamples. The resamples are now measured in batches within TABLE_BUDGET."""
    import tracemalloc

    from flnas.evaluate.bootstrap import TABLE_BUDGET, fairness_with_intervals
    from flnas.evaluate.predictions import read_predictions

    path = tmp_path / "p.csv"
    path.write_text("y_true,y_pred,sex,age_approx\n0,0,female,40\n999,999,male,70\n1,1,male,20\n")
    df = read_predictions(path)
    tracemalloc.start()
    try:
        result = fairness_with_intervals(df, resamples=10, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(result["classes"]) == 1000 and result["bootstrap"]["resamples"] == 10
    assert peak < 4 * TABLE_BUDGET  # one resample's tables and their copies, not ten


@pytest.mark.parametrize(("flag", "value"), [("--seed", "-1"), ("--resamples", "0"), ("--resamples", "100001")])
def test_bootstrap_options_are_bounded(worked, capsys, flag, value):
    code, _, err = run(["metrics", "-p", str(worked), "--ci", flag, value], capsys)
    assert code == 2 and f"Invalid value for '{flag}'" in err and "Traceback" not in err

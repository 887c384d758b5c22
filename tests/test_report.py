"""Table I, its formats and the plots, from hand-made studies in the record layout (no training)."""

from __future__ import annotations

import base64
import csv
import io
import re

import pytest

from flnas.report import build_table, run_notes, run_repeats, to_markdown, write_report
from flnas.report.table import COLUMNS, DOWN
from flnas.space import example_spec
from flnas.study.recording import add_trial as record_trial
from flnas.study.storage import open_study, set_setup

# the rows of Table I for the `study` fixture, in order: baselines, FaHaNa, then the searched models
TABLE_ONE_ROWS = [
    "ResNet-18",
    "ResNet-34",
    "MobileNetV1",
    "MobileNetV2",
    "FaHaNa (RL search)",
    "Search-1",
    "Search-2",
    "Search-3",
]
SETUP = {
    "data": None,
    "dataset": "synthetic (flnas)",
    "synthetic": True,
    "subset": None,
    "seed": 0,
    "image_size": 32,
    "cache_dir": None,
    "train": {"epochs": 2, "patience": 1, "batch_size": 16, "class_weighted_loss": True, "seed": 0, "device": "cpu"},
    "env": "Raspberry Pi 4",
    "choices": {},
    "classes": [f"c{i}" for i in range(8)],
}


def metrics(
    acc,
    unf,
    params,
    *,
    val_acc=None,
    val_unf=None,
    eodd=0.10,
    eopp1=0.05,
    eopp2=0.10,
    mem=100.0,
    lat=0.01,
    onnx=0.02,
    device="cpu",
):
    def split(a, u):
        groups = {
            g: {"accuracy": min(1.0, a + d), "count": 10}
            for g, d in (("male", 0.02), ("female", -0.02), ("young", -0.1), ("middle", 0.0), ("old", 0.05))
        }
        return {
            "loss": 1.0,
            "accuracy": a,
            "balanced_accuracy": a - 0.05,
            "unfairness": u,
            "eodd": eodd,
            "eopp1": eopp1,
            "eopp2": eopp2,
            "groups": groups,
            "pairs": {},
        }

    return {
        "params": params,
        "flops": params * 10,
        "peak_memory_mb": mem,
        "latency_s": lat,
        "throughput": 100.0,
        "onnx_latency_s": onnx,
        "epochs": 2,
        "device": device,
        "train_seconds": 1.0,
        "train": {"loss": 0.5, "accuracy": 0.7},
        "val": split(val_acc or acc, val_unf if val_unf else unf),
        "test": split(acc, unf),
    }


def add_baseline(study, name, m):
    return record_trial(
        study,
        status="ok",
        metrics=m,
        kind="baseline",
        designer="baseline",
        baseline=name,
        spec=None,
        spec_key=None,
        seed=0,
    )


def add_search(study, iteration, designer, m, status="ok"):
    spec = example_spec().model_dump(mode="json")
    spec["layers"][0]["channels"] = 8 * iteration  # distinct specs
    return record_trial(
        study,
        status=status,
        metrics=m,
        kind="search",
        iteration=iteration,
        designer=designer,
        spec=spec,
        spec_key=None,
        seed=0,
        reason=None if status == "ok" else "NaN loss",
    )


def memory_study(name="t"):
    """An in-memory study with the same directions as flnas's (fast; RDB storage is tested once below)."""
    import optuna

    from flnas.study.storage import DIRECTIONS

    return optuna.create_study(study_name=name, directions=DIRECTIONS)


@pytest.fixture()
def study():
    """Four baselines, FaHaNa's RL search and five heuristic candidates (one failed)."""
    study = memory_study()
    set_setup(study, SETUP)
    add_baseline(study, "resnet18", metrics(0.60, 0.30, 11_000_000, eodd=0.05, mem=2000, lat=0.05, onnx=0.08))
    add_baseline(study, "resnet34", metrics(0.58, 0.40, 21_000_000, mem=3500, lat=0.09, onnx=0.15))
    add_baseline(
        study, "mobilenetv1", metrics(0.62, 0.35, 3_200_000, eopp2=None, mem=1100, lat=0.04, onnx=0.05)
    )
    add_baseline(study, "mobilenetv2", metrics(0.61, 0.50, 2_200_000, mem=2400, lat=0.06, onnx=0.06))
    add_search(study, 1, "heuristic", metrics(0.55, 0.20, 50_000))
    add_search(study, 2, "heuristic", metrics(0.70, 0.10, 300_000, eodd=0.20, mem=50, lat=0.003, onnx=0.004))
    add_search(study, 3, "heuristic", metrics(0.69, 0.05, 100_000, eodd=0.03, mem=40, lat=0.002, onnx=0.003))
    add_search(study, 4, "heuristic", None, status="failed")
    add_search(study, 5, "heuristic", metrics(0.64, 0.20, 400_000, mem=60, lat=0.004, onnx=0.005))
    add_search(study, 6, "fahana-rl", metrics(0.63, 0.25, 200_000))
    add_search(study, 7, "fahana-rl", metrics(0.66, 0.28, 250_000))
    return study


def test_rows_follow_table_one_and_the_selection_rule(study):
    table = build_table(study)
    labels = [row.label for row in table.rows]
    assert labels == TABLE_ONE_ROWS
    by = {row.label: row for row in table.rows}
    # fair rule: within 0.02 of the best val accuracy (0.70) the lowest unfairness wins -> iteration 3
    assert by["Search-1"].candidate.iteration == 3
    assert by["Search-2"].candidate.iteration == 2
    assert by["Search-3"].candidate.iteration == 5  # iteration 1 is less accurate, 4 failed
    assert by["FaHaNa (RL search)"].candidate.designer == "fahana-rl"
    assert by["FaHaNa (RL search)"].candidate.iteration == 7  # 0.66 vs 0.63: only 7 is within tolerance


def test_marks_only_where_a_searched_model_beats_every_baseline(study):
    table = build_table(study)
    by = {row.label: row for row in table.rows}
    s1, s2, s3 = by["Search-1"], by["Search-2"], by["Search-3"]
    assert s1.marks["params"] == DOWN and s3.marks["latency_s"] == DOWN
    assert "params" not in s3.marks  # 400,000 is more than FaHaNa's 250,000
    # these rows have no stored test predictions, so no paired test: the image metrics stay unmarked
    # (tests/test_report_marks.py checks marks that follow the paired test)
    assert not any(key in row.marks for row in (s1, s2, s3) for key in ("accuracy", "unfairness", "eodd"))
    assert not any(row.marks for row in by.values() if not row.searched)
    assert any("no stored test predictions" in note for note in run_notes(table))


def test_fahana_counts_as_a_baseline_for_marks(study):
    by = {row.label: row for row in build_table(study).rows}
    assert "params" not in by["Search-2"].marks  # 300,000 does not beat FaHaNa's 250,000
    assert by["Search-1"].marks["params"] == DOWN  # 100,000 beats all


def test_markdown_has_every_column_row_mark_and_na(study):
    table = build_table(study)
    run_notes(table, split_sizes={"train": 168, "val": 48, "test": 24})
    md = to_markdown(table)
    lines = md.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:2] == ["Group", "DNN"]
    for name in (
        "Accuracy",
        "Balanced accuracy",
        "Unfairness",
        "EODD",
        "EOPP1",
        "EOPP2",
        "# of params",
        "Mem (MB)",
        "ONNX Runtime latency (s, 1 thread)",
    ):
        assert name in header
    assert "Latency (s, cpu)" in header  # the device the latency was measured on
    rows = {
        c.strip("| ").split("|")[1].strip(): [x.strip() for x in c.strip("|").split("|")] for c in lines[2:]
    }
    assert set(rows) == set(TABLE_ONE_ROWS)
    acc = header.index("Accuracy")
    assert rows["Search-1"][acc] == "69.00%"  # no stored predictions: no paired test, no mark
    assert rows["ResNet-18"][acc] == "60.00%"
    assert rows["MobileNetV1"][header.index("EOPP2")] == "n/a"  # undefined, never 0
    assert rows["Search-1"][header.index("# of params")] == f"{DOWN}100,000"
    assert any("SYNTHETIC" in note for note in table.notes)
    assert any("train 168, val 48, test 24" in note for note in table.notes)
    # how the models were trained, including a loss weighting that changes every row's numbers
    assert any("class_weighted_loss=True" in note and "epochs=2" in note for note in table.notes)
    assert any("nothing is copied from the paper" in note for note in table.notes)


def test_the_default_rule_is_the_one_the_search_ran_with(study):
    assert build_table(study).selection["rule"] == "fair"  # nothing stored: the default
    study.set_user_attr("search", {"iters": 5, "selection": "params", "tolerance": 0.05})
    table = build_table(study)
    assert table.selection == {"rule": "params", "tolerance": 0.05, "accuracy": "plain"}  # no key: plain
    assert build_table(study, rule="accuracy").selection["rule"] == "accuracy"  # an explicit rule wins
    assert any("rule params, tolerance 0.05" in note for note in run_notes(table))


def test_a_row_at_chance_balanced_accuracy_gets_a_note(study):
    from flnas.report.table import Stat, chance_notes

    table = build_table(study)
    assert chance_notes(table) == []  # every fixture row is well above 1/8
    row = table.rows[0]
    row.values["balanced_accuracy"] = Stat(mean=0.125, std=None)  # one class predicted for every image
    notes = chance_notes(table)
    assert len(notes) == 1 and notes[0].startswith(f"{row.label}: balanced accuracy 12.50% is at chance (1/8)")
    assert notes[0] in run_notes(table)


def test_write_report_formats_parse(study, tmp_path):
    table = build_table(study)
    run_notes(table)
    written = write_report(table, tmp_path / "out", formats=["md", "csv", "tex", "html", "png"])

    with open(written["csv"], newline="", encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    assert [r["dnn"] for r in records][-3:] == ["Search-1", "Search-2", "Search-3"]
    assert float(records[0]["accuracy"]) == pytest.approx(0.60)
    assert records[2]["eopp2"] == ""  # MobileNetV1: undefined
    assert "params↓" in records[5]["marks"]

    tex = written["tex"].read_text(encoding="utf-8")
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\midrule" in tex
    body = [line for line in tex.splitlines() if line.endswith(r"\\")]
    assert len(body) == 1 + 8  # header + rows
    assert all(len(re.split(r"(?<!\\)&", line)) == 2 + len(COLUMNS) for line in body)
    assert r"$\downarrow$100,000" in tex

    page = written["html"].read_text(encoding="utf-8")
    images = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert {name for name, _ in images} == {"accuracy_unfairness", "best_so_far", "group_accuracy"}
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for _, data in images)
    for label in ("ResNet-34", "FaHaNa (RL search)", "Search-3"):
        assert f">{label}</td>" in page
    assert f'<td class="mark">{DOWN}100,000</td>' in page
    assert 'src="http' not in page and "<link" not in page  # self-contained
    assert (tmp_path / "out" / "best_so_far.png").read_bytes().startswith(b"\x89PNG")


def test_repeats_give_mean_and_std_and_resume(tmp_path):
    study = open_study("r", f"sqlite:///{tmp_path / 'r.db'}")  # the real storage, as the CLI uses it
    set_setup(study, SETUP)
    add_baseline(study, "mobilenetv2", metrics(0.61, 0.50, 2_200_000))
    add_search(study, 1, "heuristic", metrics(0.69, 0.05, 100_000))
    add_search(study, 2, "heuristic", metrics(0.60, 0.05, 100_000))
    calls = []

    class FakeEvaluator:
        def __init__(self, seed):
            self.config = type("C", (), {"seed": seed})()
            self.data = type("D", (), {"num_classes": 8})()

        def evaluate(self, target, *, name=None, out_dir=None):
            calls.append((name, self.config.seed))
            shift = 0.02 * self.config.seed
            result = type("R", (), {})()
            result.status, result.reason = "ok", None
            result.metrics = metrics(0.50 + shift, 0.10 + shift, 1000)
            return result

    ran = run_repeats(study, 2, top=1, evaluator_for_seed=FakeEvaluator, log=lambda m: None)
    table = build_table(study, top=1)
    assert ran == 2 * len(table.rows)
    s1 = next(row for row in table.rows if row.label == "Search-1")
    # original 0.69, repeats with seeds 1 and 2: 0.52 and 0.54
    assert s1.values["accuracy"].mean == pytest.approx((0.69 + 0.52 + 0.54) / 3)
    assert s1.values["accuracy"].n == 3 and s1.values["accuracy"].std > 0
    assert table.repeats == 2
    md = to_markdown(table)
    assert " ± " in md
    assert run_repeats(study, 2, top=1, evaluator_for_seed=FakeEvaluator, log=lambda m: None) == 0  # resumed
    assert {seed for _, seed in calls} == {1, 2}


def test_no_rows_is_one_clear_error():
    from flnas.errors import StudyError

    empty = memory_study("empty")
    with pytest.raises(StudyError, match="no successful"):
        build_table(empty)


def test_rich_table_renders(study):
    from rich.console import Console

    from flnas.report import to_rich

    buf = io.StringIO()
    Console(file=buf, width=250).print(to_rich(build_table(study)))
    text = buf.getvalue()
    assert "Search-1" in text and "MobileNetV2" in text and DOWN in text


@pytest.mark.parametrize(
    ("accuracy", "label", "first"),
    [
        ("balanced", "Val balanced accuracy of best", 0.50),
        ("plain", "Val accuracy of best", 0.55),
        (None, "Val accuracy of best", 0.55),
    ],
)
def test_the_best_so_far_plot_names_and_plots_the_accuracy_of_record(study, accuracy, label, first):
    from flnas.report.plots import best_so_far_figure

    if accuracy is not None:  # balanced: a new study's default; no key: a study from before the setting (plain)
        set_setup(study, {**SETUP, "accuracy": accuracy})
    fig = best_so_far_figure(build_table(study))
    ax_acc, ax_unf = fig.axes
    assert ax_acc.get_ylabel() == label and ax_unf.get_ylabel() == "Val unfairness of best"
    heuristic = next(line for line in ax_acc.get_lines() if line.get_label() == "heuristic")
    assert heuristic.get_ydata()[0] == pytest.approx(first)  # iteration 1's val accuracy of that kind (balanced: -0.05)
    fig.canvas.draw()
    assert all(float(tick).is_integer() for tick in ax_unf.get_xticks())  # iterations: no 1.25 ticks

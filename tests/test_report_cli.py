"""`flnas report`, `flnas baselines` and `flnas experiment` from the command line."""

from __future__ import annotations

import re

import pytest

from flnas.cli.main import main
from flnas.study.storage import open_study, set_setup
from test_report import SETUP, add_baseline, add_search, metrics


def run(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code


@pytest.fixture()
def storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'flnas.db'}"
    study = open_study("t", url)
    set_setup(study, SETUP)
    add_baseline(study, "resnet18", metrics(0.60, 0.30, 11_000_000))
    add_baseline(study, "mobilenetv2", metrics(0.61, 0.50, 2_200_000))
    for i, acc in enumerate((0.70, 0.66, 0.64, 0.50), start=1):
        add_search(study, i, "llm", metrics(acc, 0.1, 100_000 * i))
    return url


def test_report_writes_every_format(storage, tmp_path, capsys):
    out = tmp_path / "report"
    assert run(["report", "--study", "t", "--storage", storage, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Table I" in printed and "Search-3" in printed and "ResNet-18" in printed
    for name in ("table.md", "table.csv", "table.tex", "report.html", "accuracy_unfairness.png"):
        assert (out / name).stat().st_size > 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 3
    md = (out / "table.md").read_text(encoding="utf-8")
    assert md.count("| FL-NAS | Search-") == 3 and "| Baseline | MobileNetV2 |" in md


def test_report_formats_and_top(storage, tmp_path):
    out = tmp_path / "r"
    assert (
        run(
            [
                "report",
                "--study",
                "t",
                "--storage",
                storage,
                "--out",
                str(out),
                "--formats",
                "md",
                "--top",
                "2",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["table.md"]
    md = (out / "table.md").read_text(encoding="utf-8")
    assert "Search-2" in md and "Search-3" not in md


def test_report_user_errors_are_one_line(storage, tmp_path, capsys):
    assert run(["report", "--study", "nope", "--storage", storage, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "no study named 'nope'" in err and "Traceback" not in err
    assert (
        run(["report", "--study", "t", "--storage", storage, "--out", str(tmp_path), "--formats", "pdf"]) == 2
    )
    assert "unknown format 'pdf'" in capsys.readouterr().err


def test_baselines_refuse_settings_that_differ_from_the_study(storage, capsys):
    code = run(
        ["baselines", "--study", "t", "--storage", storage, "--image-size", "64", "--models", "resnet18"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--image-size 64 (the study has 32)" in err
    assert run(["baselines", "--study", "t", "--storage", storage, "--models", "vgg"]) == 2
    assert "unknown baseline 'vgg'" in capsys.readouterr().err


@pytest.mark.slow
def test_experiment_rejects_an_unknown_rule_before_touching_anything(tmp_path, capsys):
    out = tmp_path / "exp"
    assert run(["experiment", "--selection", "grid", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--selection 'grid' is not a selection rule" in err and "balanced" in err
    assert not (out / "flnas.db").exists()


def test_experiment_end_to_end_and_resume(synth_dir, tmp_path, capsys):
    """Subset, one small baseline, 2 iterations of search, FaHaNa at the same budget, the report."""
    out = tmp_path / "exp"
    argv = [
        "experiment",
        "--data",
        str(synth_dir),
        "--image-size",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--iters",
        "2",
        "--designer",  # the heuristic starts from the example spec, which learns in 1 epoch (not degenerate)
        "heuristic",
        "--models",
        "mobilenetv2",
        "--no-hardware",
        "--out",
        str(out),
        "--formats",
        "md,csv,html",
        "--selection",
        "balanced",
    ]
    assert run(argv) == 0
    md = (out / "report" / "table.md").read_text(encoding="utf-8")
    assert "rule balanced, tolerance 0.02" in md  # the rule chose Search-k and is said under the table
    assert "| Baseline | MobileNetV2" in md and "| Baseline | FaHaNa (RL search) |" in md  # may be flagged
    assert "| FL-NAS | Search-1 |" in md and "| FL-NAS | Search-2 |" in md
    assert "SYNTHETIC" in md and "Split sizes: train" in md
    page = (out / "report" / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 3

    study = open_study("experiment", f"sqlite:///{out / 'flnas.db'}", create=False)
    trials = study.get_trials()
    kinds = [(t.user_attrs["kind"], t.user_attrs.get("designer")) for t in trials]
    assert kinds.count(("baseline", "baseline")) == 1
    assert kinds.count(("search", "heuristic")) == 2 and kinds.count(("search", "fahana-rl")) == 2
    assert all(t.user_attrs["status"] in ("ok", "degenerate") for t in trials)  # 1 epoch: some are
    assert study.user_attrs["search"]["selection"] == "balanced"  # a later `flnas report` uses it too

    assert run(argv) == 0  # resume: nothing is trained again
    assert len(open_study("experiment", f"sqlite:///{out / 'flnas.db'}", create=False).get_trials()) == len(
        trials
    )

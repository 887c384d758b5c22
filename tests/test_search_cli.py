"""`flnas search` and `flnas prompt` from the command line."""

from __future__ import annotations

import pytest

from flnas.cli.main import main
from flnas.evaluate.config import EvaluatorConfig
from flnas.space import example_spec, load_choices
from flnas.study.storage import get_setup, open_study, set_setup

CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def make_study(tmp_path, name="s"):
    study = open_study(name, str(tmp_path / "s.db"))
    set_setup(
        study,
        {
            "data": str(tmp_path / "data"),
            "dataset": "ISIC 2019",
            "subset": None,
            "seed": 0,
            "image_size": 32,
            "cache_dir": None,
            "train": EvaluatorConfig(epochs=5).to_dict(),
            "env": "Raspberry Pi 4",
            "choices": load_choices(None).model_dump(mode="json"),
            "classes": CLASSES,
        },
    )
    return study


def test_designer_llm_without_endpoint_is_one_sentence(tmp_path, capsys):
    code, _out, err = run(
        ["search", "--designer", "llm", "--data", str(tmp_path), "--storage", str(tmp_path / "s.db")], capsys
    )
    assert code == 2
    assert "error:" in err and "no LLM endpoint is configured" in err and "Traceback" not in err
    assert not (tmp_path / "s.db").exists()  # stopped before touching the study


def test_unknown_designer_and_bad_selection(tmp_path, capsys):
    code, _o, err = run(["search", "--designer", "grid", "--storage", str(tmp_path / "s.db")], capsys)
    assert code == 2 and "unknown designer 'grid'" in err
    code, _o, err = run(["search", "--selection", "best", "--storage", str(tmp_path / "s.db")], capsys)
    assert code == 2 and "not a selection rule" in err


def test_resume_with_conflicting_flags_is_refused(tmp_path, capsys):
    make_study(tmp_path)
    code, _o, err = run(
        [
            "search",
            "--study",
            "s",
            "--storage",
            str(tmp_path / "s.db"),
            "--epochs",
            "3",
            "--image-size",
            "64",
            "--designer",
            "random",
        ],
        capsys,
    )
    assert code == 2
    assert "was created with other settings" in err and "--epochs 3 (the study has 5)" in err
    assert "--image-size 64 (the study has 32)" in err


def test_resume_with_class_weighted_on_an_unweighted_study_is_refused(tmp_path, capsys):
    make_study(tmp_path)
    argv = ["search", "--study", "s", "--storage", str(tmp_path / "s.db"), "--class-weighted", "--designer", "random"]
    code, _o, err = run(argv, capsys)
    assert code == 2
    assert "--class-weighted (the study trains with an unweighted loss)" in err


def test_prompt_prints_the_next_iterations_prompt(tmp_path, capsys):
    study = make_study(tmp_path)
    trial = study.ask()
    spec = example_spec().model_dump(mode="json")
    metrics = {
        "params": 30_000,
        "train": {"loss": 0.87, "accuracy": 0.58},
        "val": {
            "loss": 0.64,
            "accuracy": 0.628,
            "unfairness": 0.1298,
            "eodd": 0.12,
            "eopp1": 0.12,
            "eopp2": 0.01,
            "groups": {"male": {"accuracy": 0.63, "count": 95}},
        },
        "latency_s": 0.004,
        "latency_per_image_s": 0.002,
        "throughput": 464.0,
        "peak_memory_mb": 232.9,
    }
    for key, value in {
        "kind": "search",
        "iteration": 1,
        "designer": "heuristic",
        "status": "ok",
        "spec": spec,
        "metrics": metrics,
        "record": {},
    }.items():
        trial.set_user_attr(key, value)
    study.tell(trial, [0.628, 0.1298, 30_000])
    code, out, err = run(["prompt", "--study", "s", "--storage", str(tmp_path / "s.db")], capsys)
    assert code == 0, err
    assert "neural architecture search" in out and "62.80%" in out and "Raspberry Pi 4" in out
    assert '"sepconv"' in out or "sepconv" in out
    assert get_setup(study)["image_size"] == 32


def test_prompt_for_a_missing_study(tmp_path, capsys):
    open_study("other", str(tmp_path / "s.db"))
    code, _o, err = run(["prompt", "--study", "nope", "--storage", str(tmp_path / "s.db")], capsys)
    assert code == 2 and "no study named 'nope'" in err


@pytest.mark.slow
def test_search_runs_shows_the_table_exports_the_best_and_resumes(synth_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [
        "search",
        "--data",
        str(synth_dir),
        "--designer",  # the heuristic starts from the example spec, which learns in 1 epoch (not degenerate)
        "heuristic",
        "--iters",
        "2",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--no-hardware",
        "--study",
        "cli",
        "--storage",
        str(tmp_path / "s.db"),
        "--selection",
        "balanced",
    ]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "new study 'cli'" in out and "2/2 evaluated candidates" in out
    assert "top candidates" in out and "OptDNN: trial #" in out and "Valid Acc:" in out
    assert "selection rule 'balanced'" in out and "bal. acc" in out
    best = tmp_path / "runs" / "cli" / "best"
    assert {"spec.json", "model.pt", "metrics.json", "predictions.csv", "model.py"} <= {
        p.name for p in best.iterdir()
    }
    assert (tmp_path / "runs" / "cli" / "candidates" / "0" / "spec.json").is_file()
    code, out, err = run([*argv, "--iters", "3"], capsys)
    assert code == 0, err
    assert "resuming study 'cli'" in out and "3/3 evaluated candidates; 1 new trial(s)" in out

"""The Python API: ``flnas.search / evaluate / audit / report / experiment`` (docs/api.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import flnas
from flnas.errors import EvaluationError, FlnasError, SpecError, StudyError

SIX = {"model.onnx", "model.py", "model.pt", "spec.json", "metrics.json", "predictions.csv"}


def test_import_flnas_loads_neither_torch_nor_optuna():
    code = "import sys, flnas; print(sorted(m for m in ('torch', 'optuna', 'flnas.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_evaluate_and_report_are_callable_although_they_are_subpackages_too():
    import flnas.evaluate.evaluator  # binds the subpackage to flnas.evaluate
    import flnas.report.table  # noqa: F401
    from flnas.api.evaluation import evaluate
    from flnas.evaluate import Evaluator

    assert callable(flnas.evaluate) and callable(flnas.report) and callable(flnas.search)
    assert flnas.evaluate.Evaluator is Evaluator  # still the package
    with pytest.raises(SpecError, match=r"missing\.json: spec file not found"):
        flnas.evaluate("missing.json")
    assert evaluate.__doc__ and flnas.search.__doc__.startswith("Run (or resume) the FL-NAS search")


def test_user_errors_are_flnas_errors_with_the_clis_sentences_and_nothing_is_printed(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(FlnasError, match="unknown designer 'grid'"):
        flnas.search(designer="grid", storage=storage)
    with pytest.raises(FlnasError, match="--selection 'best' is not a selection rule"):
        flnas.search(selection="best", storage=storage)
    with pytest.raises(FlnasError, match="add --ci to compute intervals"):
        flnas.audit(tmp_path / "p.csv", resamples=10)
    with pytest.raises(FlnasError, match="predictions file not found"):
        flnas.audit(tmp_path / "p.csv")
    with pytest.raises(StudyError, match="no study named 'nope'"):
        flnas.report(study="nope", storage=storage, out=tmp_path / "r")
    assert capsys.readouterr() == ("", "")


@pytest.mark.slow
def test_the_issues_snippet_on_a_synthetic_dataset(synth_dir, tmp_path, monkeypatch, capsys):
    """search (and resume), best metrics, export of the six files, report, evaluate, audit, experiment."""
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'flnas.db'}"
    tiny = {"image_size": 16, "epochs": 1, "batch_size": 32, "no_hardware": True}
    result = flnas.search(data=synth_dir, designer="heuristic", iters=2, storage=storage, study="isic", **tiny)
    assert result.evaluated == result.target == 2 and result.stopped is None
    assert 0.0 <= result.best.metrics["test"]["balanced_accuracy"] <= 1.0
    assert result.best.spec["layers"] and result.best in result.candidates
    exported = result.export("best/")
    assert SIX <= {p.name for p in (tmp_path / "best").iterdir()} and exported.source == "run folder"
    assert json.loads((tmp_path / "best" / "spec.json").read_text()) == result.best.spec

    seen: list[str] = []
    again = flnas.search(data=synth_dir, designer="heuristic", iters=3, storage=storage, study="isic",
                         callback=seen.append, **tiny)  # resumes like the CLI: one more iteration
    assert again.evaluated == 3 and len(again.new) == 1
    assert any(line.startswith("iteration 3/3") for line in seen)
    with pytest.raises(StudyError, match="was created with other settings"):
        flnas.search(data=synth_dir, iters=3, storage=storage, study="isic", image_size=32)

    table = flnas.report(study="isic", storage=storage, out="report/", formats="md,csv")
    assert [row.label for row in table.rows if row.searched] == ["Search-1", "Search-2", "Search-3"]
    assert (tmp_path / "report" / "table.md").is_file() and not (tmp_path / "report" / "report.html").exists()

    metrics = flnas.evaluate(result.best.spec, data=synth_dir, epochs=1, image_size=16, no_hardware=True)
    assert set(metrics["test"]) >= {"accuracy", "balanced_accuracy", "unfairness", "eodd"}
    bad = {**result.best.spec, "layers": [{**result.best.spec["layers"][0], "kernel": 4}]}
    with pytest.raises(EvaluationError, match="kernel"):  # the evaluator's reason, as `flnas evaluate` prints it
        flnas.evaluate(bad, data=synth_dir, epochs=1, image_size=16, no_hardware=True)

    import pandas as pd

    predictions = pd.read_csv(tmp_path / "best" / "predictions.csv", dtype=str, keep_default_na=False)
    classes = json.loads((tmp_path / "best" / "metrics.json").read_text())["dataset"]["classes"]
    audit = flnas.audit(predictions, classes=classes)
    assert audit == flnas.audit(tmp_path / "best" / "predictions.csv") | {"classes_from": "given"}
    assert audit["classes"] == classes and set(audit["groups"]) >= {"male", "female"}

    done = flnas.experiment(data=synth_dir, iters=1, out="experiment/", models="mobilenetv2", designer="heuristic",
                            formats="md", **tiny)
    assert (tmp_path / "experiment" / "report" / "table.md").is_file()
    assert done.search.evaluated == 1 and done.fahana is not None and len(done.baselines) == 1
    assert capsys.readouterr() == ("", "")  # nothing printed without progress=True or a callback

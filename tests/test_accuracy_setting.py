"""The study's accuracy of record and class weighting: defaults, storage, conflicts, Table I."""

from __future__ import annotations

import pytest

from flnas.cli.main import main
from flnas.errors import StudyError
from flnas.report import build_table, run_notes, to_markdown
from flnas.report.table import UP
from flnas.study.setup import accuracy_from_setup, resolve_setup, setup_conflicts
from flnas.study.storage import get_setup, open_study, set_setup
from test_report import SETUP, add_baseline, add_search, memory_study, metrics


def resolve(study, **kw):
    args = dict(
        data=None, subset=None, seed=None, image_size=16, cache_dir=None, env=None, choices_path=None, train={}
    )
    args.update(kw)
    return resolve_setup(study, defaults={}, **args)


def test_a_new_study_is_balanced_and_class_weighted_an_old_one_stays_plain(tmp_path):
    new = open_study("new", str(tmp_path / "s.db"))
    setup, _data, resumed = resolve(new)
    assert not resumed and setup["accuracy"] == "balanced" and setup["train"]["class_weighted_loss"] is True
    assert new.metric_names == ["val_balanced_accuracy", "val_unfairness", "params"]
    assert accuracy_from_setup({"train": {}}) == "plain"  # created before the setting existed
    assert accuracy_from_setup(None) == "plain"


def test_the_paper_preset_is_stored_and_a_different_request_is_named(tmp_path):
    study = open_study("paper", str(tmp_path / "s.db"))
    setup, _data, _ = resolve(study, accuracy="plain", train={"class_weighted_loss": False})
    assert setup["accuracy"] == "plain" and setup["train"]["class_weighted_loss"] is False
    assert open_study("paper", str(tmp_path / "s.db")).metric_names[0] == "val_accuracy"
    with pytest.raises(StudyError) as exc:
        resolve(study, accuracy="balanced", train={"class_weighted_loss": True})
    message = str(exc.value)
    assert "--accuracy balanced (the study has plain)" in message
    assert "--class-weighted (the study trains with an unweighted loss)" in message
    same, _data, resumed = resolve(study, accuracy="plain", train={"class_weighted_loss": False})
    assert resumed and same == get_setup(study)


def test_conflicts_for_an_old_setup_without_the_keys():
    old = {"train": {"epochs": 3}}  # no accuracy, no class_weighted_loss: plain and unweighted
    assert setup_conflicts(old, {"accuracy": "plain", "train": {"class_weighted_loss": False}}) == []
    assert setup_conflicts(old, {"accuracy": "balanced"}) == ["--accuracy balanced (the study has plain)"]
    weighted = {"accuracy": "balanced", "train": {"class_weighted_loss": True}}
    assert setup_conflicts(weighted, {"train": {"class_weighted_loss": False}}) == [
        "--no-class-weighted (the study trains with a class-weighted loss)"
    ]


def test_an_unknown_accuracy_is_one_sentence(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["search", "--accuracy", "top1", "--storage", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--accuracy 'top1' is not an accuracy setting" in err
    assert "Traceback" not in err and not (tmp_path / "s.db").exists()


def table_study(accuracy):
    study = memory_study()
    set_setup(study, {**SETUP, "accuracy": accuracy})
    # a one-class baseline: the best plain accuracy (0.80) and balanced accuracy at chance
    one_class = metrics(0.80, 0.00, 1_000_000)
    for part in ("val", "test"):
        one_class[part]["balanced_accuracy"] = 0.125
        one_class[part]["class_counts"] = {"true": [10] * 8, "predicted": [0, 80, 0, 0, 0, 0, 0, 0]}
    add_baseline(study, "resnet18", one_class)
    add_baseline(study, "resnet34", metrics(0.60, 0.08, 2_000_000))  # balanced 0.55
    add_search(study, 1, "heuristic", metrics(0.70, 0.05, 10_000))  # balanced 0.65
    return study


def test_table_balanced_first_and_marked_degenerate_baseline_flagged_and_not_compared():
    study = table_study("balanced")
    [resnet18, resnet34] = [t for t in study.get_trials() if t.user_attrs["kind"] == "baseline"]
    assert resnet18.user_attrs["status"] == "degenerate" and resnet34.user_attrs["status"] == "ok"
    table = build_table(study)
    assert [c.key for c in table.columns[:2]] == ["balanced_accuracy", "accuracy"]
    assert [c.marked for c in table.columns[:2]] == [True, False]
    labels = [row.label for row in table.rows]
    assert labels == ["ResNet-18 (degenerate)", "ResNet-34", "Search-1"]
    search = table.rows[-1]
    # 0.65 > 0.55 (ResNet-34); the degenerate ResNet-18 (0.80 plain, unfairness 0) sets no bar
    assert search.marks.get("balanced_accuracy") == UP and "accuracy" not in search.marks
    assert search.marks.get("unfairness") is not None  # 0.05 < 0.08: only ResNet-34 counts
    notes = run_notes(table)
    assert any("Accuracy of record: balanced accuracy" in n for n in notes)
    assert any(n.startswith("ResNet-18 (degenerate): ") and "predicted as class 1" in n for n in notes)
    assert "| Baseline | ResNet-18 (degenerate) |" in to_markdown(table)


def test_table_plain_preset_keeps_accuracy_first():
    table = build_table(table_study("plain"))
    assert [c.key for c in table.columns[:2]] == ["accuracy", "balanced_accuracy"]
    assert [c.marked for c in table.columns[:2]] == [True, False]
    search = table.rows[-1]
    assert search.marks.get("accuracy") == UP  # 0.70 > 0.60: the degenerate 0.80 is not compared
    assert "balanced_accuracy" not in search.marks


def test_the_prompt_and_the_heuristic_rank_with_the_context_selection():
    import numpy as np

    from flnas.designers.base import Candidate, DesignContext, Selection
    from flnas.designers.heuristic import HeuristicDesigner
    from flnas.designers.prompt import PromptGenerator
    from flnas.space import example_spec, load_choices
    from test_designers import TASK

    def cand(number, acc, balanced, channels):
        spec = example_spec().model_dump(mode="json")
        spec["layers"][0]["channels"] = channels
        val = {"accuracy": acc, "balanced_accuracy": balanced, "unfairness": 0.05, "groups": {}}
        return Candidate(number, number + 1, "heuristic", spec, "ok", {"params": 1000, "val": val})

    history = [cand(0, 0.80, 0.20, 16), cand(1, 0.60, 0.50, 32), cand(2, 0.50, 0.40, 64)]

    def context(accuracy):
        return DesignContext(
            history=history,
            best=None,
            choices=load_choices(None),
            task=TASK,
            iteration=4,
            rng=np.random.default_rng(0),
            log=lambda _m: None,
            selection=Selection("accuracy", 0.02, accuracy),
        )

    prompt = PromptGenerator(top_k=3, recent=0, show_tried=False)
    plain, balanced = prompt.values(context("plain"))["top_k"], prompt.values(context("balanced"))["top_k"]
    assert plain.index('"channels":16') < plain.index('"channels":32')
    assert balanced.index('"channels":32') < balanced.index('"channels":64') < balanced.index('"channels":16')
    [p_plain] = HeuristicDesigner().propose(context("plain"), 1)
    [p_balanced] = HeuristicDesigner().propose(context("balanced"), 1)
    assert p_plain.record["base"] == 0 and p_balanced.record["base"] == 1

"""The study's accuracy of record and class weighting: defaults, storage, conflicts, Table I."""

from __future__ import annotations

import pytest

from flnas.cli.main import main
from flnas.errors import StudyError
from flnas.report import build_table, run_notes, to_markdown
from flnas.report.table import UP
from flnas.study.setup import accuracy_from_setup, resolve_setup, setup_conflicts
from flnas.study.storage import get_setup, open_study, set_setup
from test_report import SETUP, add_baseline, add_search, memory_study


def resolve(study, **kw):
    args = dict(data=None, subset=None, seed=None, image_size=16, cache_dir=None, env=None, choices_path=None, train={})
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


def scored(y_true, y_pred, sex, age, params):
    """Metrics as the evaluator records them: test metrics with intervals and the packed test predictions."""
    from flnas.evaluate.bootstrap import bootstrap
    from flnas.evaluate.stored import pack_predictions

    boot = bootstrap(y_true, y_pred, classes=8, sex=sex, age_group=age, seed=SETUP["train"]["seed"])
    split = {**boot.point, **boot.to_json()}
    split["predictions"] = pack_predictions(y_true, y_pred, num_classes=8, sex=sex, age_group=age)
    return {"params": params, "dataset": {"classes": SETUP["classes"]}, "val": split, "test": split}


def table_study(accuracy):
    """400 images, 70% of class 1: a one-class baseline (best plain accuracy, zero EODD), a baseline right on
    men and wrong on women (large EODD), and a searched model right on about 2 images in 3 for everyone."""
    import numpy as np

    study = memory_study()
    set_setup(study, {**SETUP, "accuracy": accuracy})
    n = 400
    y_true = np.ones(n, dtype=int)
    minority = np.arange(n) % 10 >= 7
    y_true[minority] = np.resize([0, 2, 3, 4, 5, 6, 7], minority.sum())
    sex = np.array(["male", "female"] * (n // 2), dtype=object)
    age = np.resize(np.array(["young", "middle", "old"], dtype=object), n)
    wrong = (y_true + 1) % 8
    add_baseline(study, "resnet18", scored(y_true, np.ones(n, dtype=int), sex, age, 1_000_000))  # one class
    biased = np.where(sex == "male", y_true, wrong)
    add_baseline(study, "resnet34", scored(y_true, biased, sex, age, 2_000_000))
    fair = np.where(np.random.default_rng(0).random(n) < 0.66, y_true, wrong)
    add_search(study, 1, "heuristic", scored(y_true, fair, sex, age, 10_000))
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
    values = {row.label: {k: v.mean for k, v in row.values.items()} for row in table.rows}
    assert values["ResNet-18 (degenerate)"]["accuracy"] == pytest.approx(0.70)
    assert values["ResNet-18 (degenerate)"]["eodd"] == 0.0  # constant: perfectly "fair"
    search = table.rows[-1]
    assert values["Search-1"]["accuracy"] < 0.70 and values["Search-1"]["eodd"] < values["ResNet-34"]["eodd"]
    # the degenerate ResNet-18 (best plain accuracy, EODD 0) sets no bar; the paired test against ResNet-34 passes
    assert search.marks.get("balanced_accuracy") == UP and "accuracy" not in search.marks
    assert search.marks.get("eodd") is not None
    notes = run_notes(table)
    assert any("Accuracy of record: balanced accuracy" in n for n in notes)
    assert any(n.startswith("ResNet-18 (degenerate): ") and "no better than chance" in n for n in notes)
    assert "| Baseline | ResNet-18 (degenerate) |" in to_markdown(table)


def test_table_plain_preset_keeps_accuracy_first():
    table = build_table(table_study("plain"))
    assert [c.key for c in table.columns[:2]] == ["accuracy", "balanced_accuracy"]
    assert [c.marked for c in table.columns[:2]] == [True, False]
    search = table.rows[-1]
    assert search.marks.get("accuracy") == UP  # better than ResNet-34: the degenerate 0.70 is not compared
    assert "balanced_accuracy" not in search.marks


def test_the_prompt_and_the_heuristic_rank_with_the_context_selection():
    import numpy as np

    from flnas.designers.base import DesignContext
    from flnas.designers.heuristic import HeuristicDesigner
    from flnas.designers.prompt import PromptGenerator
    from flnas.records import Candidate, Selection
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


def test_the_prompt_shows_the_balanced_accuracy_of_record_and_the_preset_is_the_papers():
    import numpy as np

    from flnas.designers.base import DesignContext
    from flnas.designers.prompt import PromptGenerator
    from flnas.records import Candidate, Selection
    from flnas.space import example_spec, load_choices
    from test_designers import TASK

    spec = example_spec().model_dump(mode="json")
    val = {"accuracy": 0.7, "balanced_accuracy": 0.4321, "unfairness": 0.05, "groups": {}}
    best = Candidate(0, 1, "llm", spec, "ok", {"params": 1000, "val": val})

    def text(accuracy):
        context = DesignContext(
            history=[best], best=best, choices=load_choices(None), task=TASK, iteration=2,
            rng=np.random.default_rng(0), selection=Selection(accuracy=accuracy),
        )
        return PromptGenerator().build(context)

    assert "Valid Balanced Acc (the accuracy this search ranks by): 43.21%." in text("balanced")
    assert "Balanced Acc" not in text("plain")

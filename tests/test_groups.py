"""Groups as data: a dataset whose attributes are a three-valued skin type, sex and their intersection.

Nothing downstream of the data layer may assume ISIC's sex and age: the metrics, their intervals, the
packed predictions, the prompt's groups and Fairness Detail, the study setup and the report all take the
attributes of the data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from flnas.data.attributes import add_intersections, all_groups, bin_labels, bin_value, check_attributes
from flnas.data.dataset import PreparedData, Split
from flnas.designers.optmetrics import format_opt_metrics
from flnas.evaluate import Evaluator
from flnas.evaluate.bootstrap import bootstrap
from flnas.evaluate.config import EvaluatorConfig
from flnas.evaluate.fairness import fairness_metrics
from flnas.evaluate.stored import pack_predictions, unpack_predictions

BASE = {"skin": ("I", "II", "III"), "sex": ("male", "female")}
ATTRS, _ = add_intersections(BASE, {}, [["skin", "sex"]])
SKIN_SEX = tuple(f"{s}/{x}" for s in BASE["skin"] for x in BASE["sex"])


def _groups(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    skin = rng.choice(np.array(["I", "II", "III", None], dtype=object), n, p=[0.3, 0.3, 0.3, 0.1])
    sex = rng.choice(np.array(["male", "female", None], dtype=object), n, p=[0.45, 0.45, 0.1])
    return add_intersections(BASE, {"skin": skin, "sex": sex}, [["skin", "sex"]])[1]


def _split(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    images[:, 0] = (labels * 120).to(torch.uint8)[:, None, None]
    groups = _groups(n, seed)
    return Split(images=images, labels=labels, groups=groups, image_ids=[f"IMG_{seed}_{i}" for i in range(n)],
                 sensitive={"skin": groups["skin"], "sex": groups["sex"]})


@pytest.fixture(scope="module")
def skin_data() -> PreparedData:
    splits = {"train": _split(64, 1), "val": _split(32, 2), "test": _split(60, 3)}
    return PreparedData(name="skin (test)", root=Path("."), classes=["a", "b", "c"], image_size=16, splits=splits,
                        synthetic=True, attributes=ATTRS)


@pytest.fixture(scope="module")
def evaluated(skin_data, tmp_path_factory):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(8, 3))
    config = EvaluatorConfig(epochs=1, patience=1, batch_size=16, measure_hardware=False, seed=3)
    evaluator = Evaluator(skin_data, config)
    evaluator.resamples = 100
    out = tmp_path_factory.mktemp("eval")
    result = evaluator.evaluate(module, out_dir=out)
    assert result.ok, result.reason
    return result, out


def test_attributes_intersection_and_bins():
    assert ATTRS == {**BASE, "skin/sex": SKIN_SEX}
    groups = _groups(40, 0)
    both = [(s, x) for s, x in zip(groups["skin"], groups["sex"], strict=True)]
    assert list(groups["skin/sex"]) == [None if s is None or x is None else f"{s}/{x}" for s, x in both]
    labels = bin_labels([30, 65])
    assert labels == ("<30", "30-65", ">65")
    assert [bin_value(v, (30, 65), labels) for v in (29.9, 30, 65, 65.5, None)] == ["<30", "30-65", "30-65", ">65",
                                                                                      None]
    with pytest.raises(ValueError, match="'x' appears in both 'a' and 'b'"):
        check_attributes({"a": ("x", "y"), "b": ("x", "z")})
    with pytest.raises(ValueError, match="'one' has 1 group"):
        check_attributes({"one": ("only",)})


def test_metrics_over_all_groups_and_pairs_within_each_attribute():
    rng = np.random.default_rng(4)
    n = 400
    groups = _groups(n, 5)
    y_true = rng.integers(0, 3, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, 3, n))
    m = fairness_metrics(y_true, y_pred, classes=3, groups=groups, attributes=ATTRS)
    assert list(m["groups"]) == [g for g in all_groups(ATTRS) if g in m["groups"]]
    assert set(m["groups"]) == set(all_groups(ATTRS))  # 400 records fill every group
    within = {f"{gs[i]}|{gs[j]}" for gs in ATTRS.values() for i in range(len(gs)) for j in range(i + 1, len(gs))}
    assert set(m["pairs"]) == within and "I|male" not in m["pairs"] and "I/male|III/female" in m["pairs"]
    assert len(m["pairs"]) == 3 + 1 + 15
    overall = (y_true == y_pred).mean()
    by_hand = []
    for attribute, names in ATTRS.items():
        for g in names:
            mask = groups[attribute] == g
            assert m["groups"][g]["count"] == mask.sum()
            assert m["groups"][g]["accuracy"] == pytest.approx((y_true[mask] == y_pred[mask]).mean())
            by_hand.append(abs((y_true[mask] == y_pred[mask]).mean() - overall))
    assert m["unfairness"] == pytest.approx(np.mean(by_hand))
    # an intersection is an attribute like any other: the same numbers as a plain column of its groups
    alone = fairness_metrics(y_true, y_pred, classes=3, groups={"c": groups["skin/sex"]}, attributes={"c": SKIN_SEX})
    assert alone["pairs"] == {k: v for k, v in m["pairs"].items() if "/" in k}
    # without attributes, a non-ISIC attribute's groups are its values, sorted
    inferred = fairness_metrics(y_true, y_pred, classes=3, groups={"skin": groups["skin"]})
    assert list(inferred["groups"]) == ["I", "II", "III"] and set(inferred["pairs"]) == {"I|II", "I|III", "II|III"}
    with pytest.raises(ValueError, match=r"skin\[\d+\] = 'IV' is not one of I, II, III"):
        fairness_metrics([0, 1], [0, 1], classes=2, groups={"skin": ["I", "IV"]}, attributes=BASE)


def test_per_group_rates_agree_with_fairlearn_for_a_three_valued_attribute():
    from fairlearn.metrics import MetricFrame, true_negative_rate, true_positive_rate
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(9)
    n = 300
    skin = rng.choice(np.array(["I", "II", "III"], dtype=object), n)
    y_true = rng.integers(0, 2, n)
    flip = rng.random(n) < np.select([skin == "I", skin == "II"], [0.1, 0.25], 0.4)
    y_pred = np.where(flip, 1 - y_true, y_true)
    m = fairness_metrics(y_true, y_pred, classes=2, groups={"skin": skin}, attributes={"skin": BASE["skin"]})
    frame = MetricFrame(metrics={"acc": accuracy_score, "tpr": true_positive_rate, "tnr": true_negative_rate},
                        y_true=y_true, y_pred=y_pred, sensitive_features=skin).by_group
    for g in BASE["skin"]:
        assert m["groups"][g]["accuracy"] == pytest.approx(frame.loc[g, "acc"])
    for a, b in (("I", "II"), ("I", "III"), ("II", "III")):
        d_tpr = abs(frame.loc[a, "tpr"] - frame.loc[b, "tpr"])
        d_tnr = abs(frame.loc[a, "tnr"] - frame.loc[b, "tnr"])
        pair = m["pairs"][f"{a}|{b}"]
        # binary one-vs-rest: class 1's TPR gap is class 0's TNR gap and vice versa
        assert pair["eopp1"] == pytest.approx((d_tpr + d_tnr) / 2)
        assert pair["eodd"] == pytest.approx(max(d_tpr, d_tnr))


def test_evaluator_metrics_intervals_and_packed_predictions_carry_the_groups(evaluated, skin_data):
    result, out = evaluated
    m = result.metrics
    assert m["dataset"]["attributes"] == {a: list(g) for a, g in ATTRS.items()}
    test = m["test"]
    assert set(test["groups"]) <= set(all_groups(ATTRS)) and {"I", "III", "female", "II/male"} <= set(test["groups"])
    assert "I/male|III/female" in test["pairs"] and "male|female" in test["pairs"]
    assert set(test["ci"]["groups"]) == set(test["groups"])
    packed = test["predictions"]
    assert packed["format"] == "flnas-predictions/2" and packed["attributes"]["skin/sex"] == list(SKIN_SEX)
    stored = unpack_predictions(json.loads(json.dumps(packed)))
    assert stored is not None and stored.attributes == ATTRS
    for attribute in ATTRS:
        assert list(stored.groups[attribute]) == list(skin_data.splits["test"].groups[attribute])
    again = bootstrap(stored.y_true, stored.y_pred, classes=3, groups=stored.groups, attributes=stored.attributes,
                      resamples=100, seed=3).to_json()
    assert again["ci"] == test["ci"]
    # the prompt's line for this candidate lists every group of every attribute, in order
    detail = format_opt_metrics(m).split("Fairness Detail: [")[1].split("]")[0]
    assert [item.split(":")[0] for item in detail.split("), ")] == list(all_groups(ATTRS))
    # predictions.csv holds the raw sensitive columns, so `flnas metrics` can audit it again
    frame = result.predictions
    assert list(frame.columns) == ["image", "y_true", "y_pred", "skin", "sex"]
    assert (out / "predictions.csv").exists()


def test_flnas_metrics_audits_the_predictions_with_the_same_groups(evaluated, capsys):
    from flnas.cli.main import main

    result, out = evaluated
    with pytest.raises(SystemExit) as exc:
        main(["metrics", "--predictions", str(out / "predictions.csv"), "--sensitive", "skin,sex",
              "--intersect", "skin,sex", "--json"])
    assert exc.value.code == 0
    audit = json.loads(capsys.readouterr().out)
    test = result.metrics["test"]
    assert audit["groups"] == test["groups"]

    def unordered(pairs: dict) -> dict:  # the CSV's groups are sorted (female, male): pairs may read b|a
        return {frozenset(key.split("|")): value for key, value in pairs.items()}

    assert unordered(audit["pairs"]) == unordered(test["pairs"])
    assert audit["unfairness"] == pytest.approx(test["unfairness"])
    # the CSV's categorical groups are sorted (female, male), the dataset's in its own order
    assert audit["attributes"]["skin/sex"] == [f"{s}/{x}" for s in ("I", "II", "III") for x in ("female", "male")]


def test_setup_prompt_and_report_read_the_attributes(evaluated, skin_data, tmp_path):
    from flnas.designers.base import DesignContext
    from flnas.designers.prompt import PromptGenerator
    from flnas.records import Candidate
    from flnas.report import build_table, run_notes
    from flnas.report.plots import group_accuracy_png
    from flnas.space import example_spec, load_choices
    from flnas.study.recording import add_trial
    from flnas.study.setup import attributes_from_setup, make_setup, task_from_setup
    from flnas.study.storage import open_study, set_setup

    result, _ = evaluated
    setup = make_setup(data=skin_data, data_arg=None, subset=None, seed=0, image_size=16, cache_dir=None,
                       train=EvaluatorConfig(epochs=1), env="Raspberry Pi 4", choices=load_choices(None))
    assert setup["attributes"]["skin"] == ["I", "II", "III"] and attributes_from_setup(setup) == ATTRS
    assert attributes_from_setup({"dataset": "old study"}) == {"sex": ("male", "female"),
                                                              "age": ("young", "middle", "old")}
    task = task_from_setup(setup)
    assert task.groups == {a: list(g) for a, g in ATTRS.items()}

    spec = example_spec().model_dump(mode="json")
    best = Candidate(number=0, iteration=1, designer="random", spec=spec, status="ok", metrics=result.metrics)
    context = DesignContext(history=[best], best=best, choices=load_choices(None), task=task, iteration=2,
                            rng=np.random.default_rng(0), log=lambda _m: None)
    text = PromptGenerator().build(context)
    assert "skin: I, II, III; sex: male, female; skin/sex: I/male, I/female, II/male" in text
    assert "Fairness Detail: [I: (" in text and "III/female: (" in text and "middle_age" not in text

    study = open_study("skin", f"sqlite:///{tmp_path / 's.db'}")
    set_setup(study, setup)
    add_trial(study, status="ok", metrics=result.metrics, kind="baseline", designer="baseline",
              baseline="resnet18", spec=None, spec_key=None, seed=0)  # a row even if it is degenerate
    table = build_table(study)
    notes = run_notes(table)
    assert any("Sensitive attributes (groups): skin (I, II, III); sex (male, female); skin/sex (I/male" in n
               for n in notes)
    assert group_accuracy_png(table).startswith(b"\x89PNG")


def test_packed_isic_predictions_keep_format_1():
    y = np.array([0, 1, 2, 1])
    sex = np.array(["male", None, "female", "female"], dtype=object)
    packed = pack_predictions(y, y, num_classes=3, sex=sex, age_group=["young", "old", None, "middle"])
    assert packed["format"] == "flnas-predictions/1" and packed["sex"] == "0-11" and packed["age_group"] == "02-1"
    assert "groups" not in packed and unpack_predictions(packed).attributes == {"sex": ("male", "female"),
                                                                               "age": ("young", "middle", "old")}


AUDIT_CSV = """y_true,y_pred,tone,years
MEL,MEL,dark,25
MEL,NV,dark,50
NV,NV,light,70
NV,NV,medium,
MEL,MEL,light,40
NV,MEL,medium,33
"""


def _metrics_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from flnas.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["metrics", *args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_flnas_metrics_with_made_up_sensitive_columns(tmp_path, capsys):
    path = tmp_path / "p.csv"
    path.write_text(AUDIT_CSV)
    code, out, _ = _metrics_cli(["-p", str(path), "--sensitive", "tone,years", "--bins", "years=40",
                                 "--intersect", "tone,years", "--json"], capsys)
    assert code == 0
    m = json.loads(out)
    assert m["attributes"] == {
        "tone": ["dark", "light", "medium"],
        "years": ["<=40", ">40"],
        "tone/years": [f"{t}/{y}" for t in ("dark", "light", "medium") for y in ("<=40", ">40")],
    }
    assert {g: v["count"] for g, v in m["groups"].items()} == {  # a single edge: 40 is in the lower bin
        "dark": 2, "light": 2, "medium": 2, "<=40": 3, ">40": 2,
        "dark/<=40": 1, "dark/>40": 1, "light/<=40": 1, "light/>40": 1, "medium/<=40": 1,
    }
    assert m["groups"]["dark"]["accuracy"] == 0.5 and m["groups"]["medium"]["accuracy"] == 0.5
    assert set(m["pairs"]) >= {"dark|light", "light|medium", "<=40|>40", "dark/<=40|medium/>40"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sensitive", "tone,skin"], "missing column(s) skin"),
        (["--sensitive", "years", "--bins", "years=65,30"], "edges must increase strictly (got 65, 30)"),
        (["--sensitive", "years", "--bins", "years=30,x"], "expected COLUMN=EDGE,EDGE"),
        (["--sensitive", "tone", "--bins", "years=30"], "bins are given for years, which is not one of"),
        (["--bins", "years=30"], "name the columns with --sensitive too"),
        (["--sensitive", "tone", "--bins", "tone=30"], "line 2: column tone has 'dark', not a number"),
        (["--sensitive", "only"], "column only has only the value 'x'"),
        (["--sensitive", "tone", "--intersect", "tone,age"], "cannot intersect 'age': not an attribute"),
    ],
)
def test_flnas_metrics_sensitive_errors_are_one_sentence(tmp_path, capsys, args, message):
    path = tmp_path / "p.csv"
    path.write_text("\n".join(line + ("," + ("only" if i == 0 else "x")) for i, line in
                              enumerate(AUDIT_CSV.strip().splitlines())) + "\n")
    code, out, err = _metrics_cli(["-p", str(path), *args], capsys)
    assert code == 2 and not out
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _evaluate_on_synthetic_card(tmp_path, seed):
    """A tiny CNN trained for 1 epoch on `flnas data synth --card` data; predictions under tmp_path/out."""
    from flnas.data import prepare_data, write_synthetic

    write_synthetic(tmp_path / "card", n=120, image_size=16, card=True)
    data = prepare_data(tmp_path / "card", image_size=16, cache_dir=tmp_path / "c", progress=False)
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(4, data.num_classes))
    evaluator = Evaluator(data, EvaluatorConfig(epochs=1, patience=1, batch_size=16, measure_hardware=False))
    evaluator.resamples = 50
    result = evaluator.evaluate(module, out_dir=tmp_path / "out")
    assert result.ok, result.reason
    return data, result


def test_card_dataset_predictions_audit_equals_the_evaluator(tmp_path, capsys):
    """`flnas data synth --card`: skin_tone, binned age and sex/skin_tone flow to metrics and back from the CSV."""
    data, result = _evaluate_on_synthetic_card(tmp_path, seed=0)
    assert "skin_tone" in data.attributes and "sex/skin_tone" in data.attributes
    test = result.metrics["test"]
    assert {"light", "dark", "female/dark"} & set(test["groups"]) and "light|dark" in test["pairs"]
    code, out, _ = _metrics_cli(["-p", str(tmp_path / "out" / "predictions.csv"), "--json",
                                 "--sensitive", "gender,age_years,skin_tone",
                                 "--bins", "age_years=30,65:young,middle,old", "--intersect", "gender,skin_tone"],
                                capsys)
    assert code == 0
    audit = json.loads(out)
    assert audit["groups"] == test["groups"] and audit["unfairness"] == pytest.approx(test["unfairness"])
    for key in ("eodd", "eopp1", "eopp2"):
        assert audit[key] == pytest.approx(test[key])


def test_card_dataset_predictions_audit_without_flags(tmp_path, capsys):
    """metrics.json records each attribute's column (and bins): a plain `flnas metrics -p` equals the evaluator."""
    data, result = _evaluate_on_synthetic_card(tmp_path, seed=1)
    recorded = json.loads((tmp_path / "out" / "metrics.json").read_text())["dataset"]["sensitive"]
    assert recorded == {"sex": {"column": "gender"}, "age": {"column": "age_years", "bins": [30, 65]},
                        "skin_tone": {"column": "skin_tone"}}
    code, out, err = _metrics_cli(["-p", str(tmp_path / "out" / "predictions.csv"), "--json"], capsys)
    assert code == 0, err
    audit, test = json.loads(out), result.metrics["test"]
    assert audit["attributes"] == {a: list(g) for a, g in data.attributes.items()}
    assert audit["groups"] == test["groups"] and audit["pairs"] == test["pairs"]
    for key in ("accuracy", "unfairness", "eodd", "eopp1", "eopp2"):
        assert audit[key] == pytest.approx(test[key])
    # explicit flags still win over the record
    code, out, _ = _metrics_cli(["-p", str(tmp_path / "out" / "predictions.csv"), "--json",
                                 "--sensitive", "skin_tone"], capsys)
    assert code == 0 and json.loads(out)["attributes"] == {"skin_tone": ["dark", "light", "medium"]}
    # a group name the record does not know is one clear sentence
    path = tmp_path / "out" / "predictions.csv"
    path.write_text(path.read_text().replace(",light", ",pale", 1))
    code, out, err = _metrics_cli(["-p", str(path)], capsys)
    assert code == 2 and not out and "column skin_tone has 'pale', not one of light, medium, dark" in err

"""Optuna's samplers as designers (tpe, nsga2, gp) and the define-by-run encoding of the Choices."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import optuna
import pytest

from flnas.designers.registry import create_designer, designer_names
from flnas.space import load_choices, random_spec, spec_key, validate_spec
from flnas.space.sampler import distributions, encode_spec, suggest_spec
from flnas.study.loop import run_search
from flnas.study.storage import open_study
from test_designers import TASK

CHOICES = load_choices(None).model_copy(update={"max_params": 300_000})


def test_encoding_round_trips_and_covers_the_choices():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_types, seen_after, depths = set(), set(), set()
    for _ in range(60):
        trial = study.ask()
        spec = suggest_spec(trial, CHOICES, image_size=32)
        params = encode_spec(spec, CHOICES, image_size=32)
        assert params is not None
        back = suggest_spec(optuna.trial.FixedTrial(params), CHOICES, image_size=32)
        assert spec_key(back) == spec_key(spec)
        assert set(distributions(params, CHOICES, image_size=32)) == set(params)
        seen_types |= {layer["type"] for layer in spec["layers"]}
        seen_after |= {v for k, v in params.items() if k.endswith("_after")}
        depths.add(params["n_conv"])
        study.tell(trial, 0.0)
    assert seen_types == {"conv", "sepconv", "pool", "dropout"} and seen_after == {"none", "pool", "dropout"}
    assert min(depths) == CHOICES.min_layers and len(depths) > 10
    # a spec of another form (a pool first) is not encoded; nothing is guessed
    assert encode_spec({"layers": [{"type": "pool", "kernel": 2}], "head": {}}, CHOICES, image_size=32) is None


def test_decoding_keeps_shapes_possible_at_a_small_input():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(40):
        trial = study.ask()
        spec = suggest_spec(trial, CHOICES, image_size=4)
        errors = validate_spec(spec, CHOICES.model_copy(update={"max_params": None}), image_size=4, num_classes=8)
        shape = [e for e in errors.errors if "would shrink" in e.message]
        assert not shape, shape  # strides and pool windows fit the feature map (other rules may not)
        study.tell(trial, 0.0)


class SpecEvaluator:
    """Accuracy grows with the first layer's channels and falls with depth (a landscape with a slope)."""

    def evaluate(self, spec, *, name=None, out_dir=None, on_epoch=None):
        convs = [layer for layer in spec["layers"] if layer["type"] in ("conv", "sepconv")]
        acc = 0.3 + convs[0]["channels"] / 1000 - 0.01 * len(convs)
        val = {"accuracy": acc, "balanced_accuracy": acc, "unfairness": 0.05, "groups": {}}
        return SimpleNamespace(status="ok", reason=None, metrics={"params": 1000 * len(convs), "val": val})


@pytest.mark.parametrize("name", ["tpe", "nsga2", "gp"])
def test_sampler_designers_propose_new_valid_specs_told_every_result(tmp_path, name):
    assert name in designer_names()
    study = open_study(name, str(tmp_path / "s.db"))
    designer = create_designer(name)
    result = run_search(
        study,
        designer=designer,
        evaluator=SpecEvaluator(),
        task=TASK,
        choices=CHOICES,
        iters=7,
        seed=3,
        log=lambda _m: None,
    )
    assert result.evaluated == 7 and all(c.status == "ok" for c in result.candidates)
    keys = [spec_key(c.spec) for c in result.candidates]
    assert len(set(keys)) == 7
    records = [t.user_attrs["record"] for t in study.get_trials()]
    assert [r["told"] for r in records] == list(range(7))  # every earlier result, rebuilt from the study
    assert all(r["method"] == name and "fallback" not in r for r in records)
    # a fresh designer (a resumed search) is told the same history
    again = create_designer(name)
    from flnas.designers.base import DesignContext

    context = DesignContext(
        history=result.candidates, best=result.best, choices=CHOICES, task=TASK, iteration=8,
        rng=np.random.default_rng(0), log=lambda _m: None,
    )
    [proposal] = again.propose(context, 1)
    assert proposal.record["told"] == 7 and spec_key(proposal.spec) not in keys


def test_a_degenerate_result_is_told_as_the_worst():
    from flnas.designers.base import DesignContext
    from flnas.designers.samplers import TPEDesigner
    from flnas.records import Candidate, Selection

    designer = TPEDesigner()
    context = DesignContext(
        history=[], best=None, choices=CHOICES, task=TASK, iteration=1, rng=np.random.default_rng(0),
        selection=Selection(accuracy="plain"),
    )
    val = {"accuracy": 0.9, "balanced_accuracy": 0.125, "unfairness": 0.0}
    degenerate = Candidate(0, 1, "tpe", {}, "degenerate", {"params": 10, "val": val})
    assert designer._values(degenerate, context) == [0.0, 1.0, pytest.approx(np.log10(300_000))]
    ok = Candidate(1, 2, "tpe", {}, "ok", {"params": 1000, "val": val})
    assert designer._values(ok, context) == [0.9, 0.0, 3.0]  # plain: the study's accuracy of record
    context.selection = Selection(accuracy="balanced")
    assert designer._values(ok, context)[0] == 0.125


def test_random_specs_of_the_encoded_form_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(30):
        spec = random_spec(CHOICES, rng, image_size=32, num_classes=8).model_dump(mode="json")
        params = encode_spec(spec, CHOICES, image_size=32)
        if params is not None:
            assert spec_key(suggest_spec(optuna.trial.FixedTrial(params), CHOICES, image_size=32)) == spec_key(spec)


@pytest.mark.parametrize("name", ["random", "heuristic", "evolution", "fahana-rl", "tpe", "nsga2", "gp"])
def test_a_longer_search_starts_with_the_shorter_one(tmp_path, name):
    """What bench/search_quality.py's --also-at relies on: a designer's proposals do not depend on N."""
    specs = {}
    for iters in (3, 5):
        study = open_study(f"{name}-{iters}", str(tmp_path / f"{iters}.db"))
        result = run_search(
            study,
            designer=create_designer(name),
            evaluator=SpecEvaluator(),
            task=TASK,
            choices=CHOICES,
            iters=iters,
            seed=1,
            log=lambda _m: None,
        )
        specs[iters] = [spec_key(c.spec) for c in result.candidates if c.spec is not None]
    assert specs[5][:3] == specs[3]

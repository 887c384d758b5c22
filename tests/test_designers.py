"""Every registered designer proposes valid, new specs; the offline designers follow their rules."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from flnas.designers.base import DesignContext
from flnas.designers.heuristic import HeuristicDesigner
from flnas.designers.registry import create_designer, designer_names, register_designer
from flnas.errors import FlnasError
from flnas.records import Candidate, TaskInfo
from flnas.space import example_spec, load_choices, spec_key, validate_spec
from flnas.study.history import load_candidates
from flnas.study.loop import run_search
from flnas.study.storage import open_study

CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
TASK = TaskInfo(
    dataset="synthetic",
    classes=CLASSES,
    groups={"sex": ["male", "female"]},
    image_size=32,
    env="Raspberry Pi 4",
)
NEEDS_ENDPOINT = {"llm"}  # tested against a local chat-completions server in the LLM tests


def small_choices():
    """A small space so random draws stay cheap to validate."""
    return load_choices(None).model_copy(
        update={"max_layers": 4, "max_total_layers": 6, "channels": [8, 16, 24, 32], "head_hidden": [32, 64]}
    )


class FakeEvaluator:
    """Accuracy grows with total channels; unfairness with depth (so rules have something to choose)."""

    def evaluate(self, spec, *, name=None, out_dir=None, on_epoch=None):
        convs = [layer for layer in spec["layers"] if layer["type"] in ("conv", "sepconv")]
        width = sum(layer["channels"] for layer in convs)
        acc = min(0.95, 0.4 + width / 1000)
        groups = {
            "male": {"accuracy": acc + 0.01, "count": 10},
            "female": {"accuracy": acc - 0.01, "count": 10},
        }
        val = {"accuracy": acc, "unfairness": 0.01 * len(convs), "groups": groups}
        return SimpleNamespace(status="ok", reason=None, metrics={"params": 100 * width, "val": val})


def offline_designers():
    return [name for name in designer_names() if name not in NEEDS_ENDPOINT]


def test_registry_lists_builtins_and_rejects_unknown_names_and_options():
    names = designer_names()
    assert {"random", "evolution", "heuristic"} <= set(names)
    with pytest.raises(FlnasError, match="unknown designer 'nope'; choose one of"):
        create_designer("nope")
    with pytest.raises(FlnasError, match="has no option 'temperature'"):
        create_designer("random", temperature=0.5)
    assert create_designer("evolution", population=3, sample=2, init_spec=None).population == 3


def test_register_designer_adds_a_name():
    from flnas.designers.random import RandomDesigner

    @register_designer("test-random-copy")
    class Copy(RandomDesigner):
        pass

    assert (
        "test-random-copy" in designer_names()
        and create_designer("test-random-copy").name == "test-random-copy"
    )


@pytest.mark.parametrize("name", offline_designers())
def test_designer_proposes_valid_new_specs(name, tmp_path):
    study = open_study("d", str(tmp_path / "s.db"))
    choices = small_choices()
    designer = create_designer(name)
    result = run_search(
        study,
        designer=designer,
        evaluator=FakeEvaluator(),
        task=TASK,
        choices=choices,
        iters=6,
        k=1,
        log=lambda _m: None,
    )
    cands = load_candidates(study)
    assert result.evaluated == 6
    assert all(c.status == "ok" for c in cands), [(c.status, c.reason) for c in cands]
    keys = [spec_key(c.spec) for c in cands]
    assert len(set(keys)) == len(keys)
    for c in cands:
        assert validate_spec(c.spec, choices, image_size=32, num_classes=len(CLASSES)).ok
    # asked for several at once, with all of the above already tried: still new and distinct
    context = DesignContext(
        history=cands,
        best=result.best,
        choices=choices,
        task=TASK,
        iteration=7,
        rng=np.random.default_rng(1),
        log=lambda _m: None,
    )
    more = designer.propose(context, 3)
    new = [spec_key(p.spec) for p in more if p.spec is not None]
    assert len(new) == 3 and len(set(new) | set(keys)) == len(keys) + 3


def context_with(history, best, iteration=2, seed=0):
    return DesignContext(
        history=history,
        best=best,
        choices=load_choices(None),
        task=TASK,
        iteration=iteration,
        rng=np.random.default_rng(seed),
        log=lambda _m: None,
    )


def ok(number, spec, acc, groups, unfairness=0.05):
    val = {
        "accuracy": acc,
        "unfairness": unfairness,
        "groups": {g: {"accuracy": a, "count": 10} for g, a in groups.items()},
    }
    return Candidate(
        number=number,
        iteration=number + 1,
        designer="heuristic",
        spec=spec,
        status="ok",
        metrics={"params": 30_000, "val": val},
    )


def test_heuristic_starts_from_the_example_or_the_init_spec(tmp_path):
    first = HeuristicDesigner().propose(context_with([], None, iteration=1), 1)[0]
    assert first.spec == example_spec().model_dump(mode="json") and first.record["edit"] == "init"
    init = example_spec().model_dump(mode="json")
    init["layers"][0]["channels"] = 16
    path = tmp_path / "init.json"
    import json

    path.write_text(json.dumps(init))
    assert HeuristicDesigner(init_spec=path).propose(context_with([], None, iteration=1), 1)[0].spec == init
    with pytest.raises(FlnasError, match="init-spec file not found"):
        HeuristicDesigner(init_spec=tmp_path / "missing.json")


def test_heuristic_follows_the_prompt_priorities():
    spec = example_spec().model_dump(mode="json")
    unfair = ok(0, spec, 0.70, {"male": 0.75, "female": 0.72, "young": 0.50})  # weakest group 0.20 behind
    designer = HeuristicDesigner()
    assert designer.mode(context_with([unfair], unfair)) == "fairness"
    p = designer.propose(context_with([unfair], unfair), 1)[0]
    assert p.record["mode"] == "fairness" and p.record["edit"] == "change_norm"
    assert {layer.get("norm") for layer in p.spec["layers"] if layer["type"] in ("conv", "sepconv")} == {"group"}

    fair = ok(0, spec, 0.70, {"male": 0.71, "female": 0.69})
    assert designer.mode(context_with([fair], fair)) == "accuracy"
    p = designer.propose(context_with([fair], fair), 1)[0]
    assert p.record["edit"] == "add_conv" and len(p.spec["layers"]) == len(spec["layers"]) + 1

    # two ok candidates since the best one did not beat it: step down the ladder to shrink
    worse = [
        ok(i, {**spec, "head": {**spec["head"], "hidden": [h]}}, 0.6, {"male": 0.6})
        for i, h in ((1, 64), (2, 32))
    ]
    assert designer.mode(context_with([fair, *worse[:1]], fair)) == "accuracy"
    assert designer.mode(context_with([fair, *worse], fair)) == "shrink"
    p = designer.propose(context_with([fair, *worse], fair), 1)[0]
    assert p.record["mode"] == "shrink" and p.record["base"] == 0
    # the third miss: the shrink edits rotate to their third (narrow: fewer channels somewhere)
    assert p.record["edit"] == "narrow"
    # with the weakest group lagging, fairness comes first; after two misses, accuracy
    assert designer.mode(context_with([unfair, *worse], unfair)) == "accuracy"


def test_heuristic_is_deterministic_and_never_repeats():
    spec = example_spec().model_dump(mode="json")
    best = ok(0, spec, 0.70, {"male": 0.71, "female": 0.69})
    a = HeuristicDesigner().propose(context_with([best], best, seed=1), 4)
    b = HeuristicDesigner().propose(context_with([best], best, seed=2), 4)
    assert [p.spec for p in a] == [p.spec for p in b]
    keys = {spec_key(p.spec) for p in a} | {spec_key(spec)}
    assert len(keys) == 5


def test_evolution_mutates_a_tournament_winner_once_the_population_is_full():
    from flnas.designers.evolution import EvolutionDesigner

    spec = example_spec().model_dump(mode="json")
    history = []
    for i, ch in enumerate((16, 24, 32, 48, 64)):
        s = {**spec, "layers": [{**spec["layers"][0], "channels": ch}, *spec["layers"][1:]]}
        history.append(ok(i, s, 0.5 + i / 100, {"male": 0.5}))
    designer = EvolutionDesigner(population=3, sample=2)
    p = designer.propose(context_with(history, history[-1]), 1)[0]
    assert p.record["population"] == [2, 3, 4]  # the two oldest aged out
    assert set(p.record["sample"]) <= {2, 3, 4} and p.record["parent"] in p.record["sample"]
    assert p.record["mutation"] is not None
    warm = EvolutionDesigner(population=10, sample=3).propose(context_with(history, history[-1]), 1)[0]
    assert warm.record["warm_start"] == "random"
    with pytest.raises(ValueError):
        EvolutionDesigner(population=2, sample=3)


def test_heuristic_explores_edits_and_restarts_from_another_pareto_member():
    spec = example_spec().model_dump(mode="json")
    best = ok(0, spec, 0.70, {"male": 0.71, "female": 0.69}, unfairness=0.02)
    small = {**spec, "head": {**spec["head"], "hidden": []}}
    other = ok(1, small, 0.60, {"male": 0.6}, unfairness=0.01)  # fairer, less accurate: on the front
    other.metrics["params"] = 10_000  # and smaller
    designer = HeuristicDesigner()
    edits = set()
    history = [best, other]
    for i in range(2, 6):  # four misses in a row: every one starts with a different edit
        p = designer.propose(context_with(history, best, iteration=i + 1), 1)[0]
        edits.add(p.record["edit"])
        history.append(ok(i, p.spec, 0.5, {"male": 0.5}, unfairness=0.3))
    assert len(edits) >= 3 and edits != {"add_dropout"}
    # a whole ladder (2 modes x plateau 2) without a new best: restart from the other front member
    assert designer.restart(context_with(history, best)) is other
    p = designer.propose(context_with(history, best, iteration=7), 1)[0]
    assert p.record["base"] == 1 and p.record.get("restart") is True

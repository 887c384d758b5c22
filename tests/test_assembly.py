"""The one assembly of the search: `flnas prompt` shows what the loop sends; defaults agree with the layers below."""

from __future__ import annotations

import pytest

from flnas.cli.main import main
from flnas.designers.base import Proposal
from flnas.designers.prompt import PromptGenerator
from flnas.evaluate.config import EvaluatorConfig
from flnas.space import example_spec, load_choices
from flnas.study.loop import run_search
from flnas.study.setup import task_from_setup
from flnas.study.storage import get_setup, open_study, set_search_settings, set_setup

CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


def _metrics(accuracy: float) -> dict:
    return {
        "params": 30_000,
        "val": {"accuracy": accuracy, "unfairness": 0.1, "eodd": 0.1, "eopp1": 0.1, "eopp2": 0.01, "groups": {}},
    }


def _add(study, designer: str, iteration: int, accuracy: float, channels: int) -> None:
    spec = example_spec().model_dump(mode="json")
    spec["layers"][0]["channels"] = channels
    trial = study.ask()
    attrs = {"kind": "search", "iteration": iteration, "designer": designer, "status": "ok", "spec": spec}
    for key, value in {**attrs, "metrics": _metrics(accuracy), "record": {}}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, [accuracy, 0.1, 30_000])


class Capture:
    """A designer named "llm" that keeps the prompt the loop's context gives and proposes nothing."""

    name = "llm"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def propose(self, context, k=1):
        self.prompts.append(PromptGenerator().build(context))
        return [Proposal(spec=None, error="captured") for _ in range(k)]

    def observe(self, candidate) -> None:
        pass

    def usage(self) -> dict:
        return {}


def test_prompt_shows_exactly_what_the_loop_sends_its_designer_only_its_own_history(tmp_path, capsys):
    """An experiment's study holds the LLM's search and FaHaNa's; the LLM's prompt shows only its own."""
    db = str(tmp_path / "s.db")
    study = open_study("s", db)
    set_setup(
        study,
        {
            "data": None,
            "dataset": "ISIC 2019",
            "seed": 0,
            "image_size": 32,
            "train": EvaluatorConfig(epochs=1).to_dict(),
            "env": "Raspberry Pi 4",
            "choices": load_choices(None).model_dump(mode="json"),
            "classes": CLASSES,
        },
    )
    _add(study, "llm", 1, 0.6111, 16)
    _add(study, "fahana-rl", 1, 0.7777, 24)  # better, but another designer's: never in the LLM's prompt
    set_search_settings(study, iters=3, candidates=1, selection="fair", tolerance=0.02, designer="llm")

    with pytest.raises(SystemExit) as exc:
        main(["prompt", "--study", "s", "--storage", db])
    printed = capsys.readouterr().out
    assert exc.value.code == 0
    assert "61.11%" in printed and "77.77%" not in printed
    assert "this is iteration 2" not in printed  # the LLM has a best: iteration 2 starts from it

    capture = Capture()
    setup = get_setup(study)
    run_search(
        study,
        designer=capture,
        evaluator=None,
        task=task_from_setup(setup),
        choices=load_choices(None),
        iters=3,
        accuracy="plain",  # a setup without the setting is plain
        log=lambda _m: None,
        max_passes=1,
    )
    assert capture.prompts and printed == capture.prompts[0] + "\n"


def test_the_api_defaults_agree_with_the_study_layer():
    from flnas.api import defaults
    from flnas.study import storage, workers

    assert defaults.STUDY == storage.DEFAULT_STUDY
    assert (defaults.HEARTBEAT_INTERVAL, defaults.GRACE_PERIOD) == (workers.DEFAULT_HEARTBEAT, workers.DEFAULT_GRACE)


def test_resolve_setup_draws_the_progress_bar_only_when_asked(synth_dir, tmp_path, capsys):
    """The library is quiet; `flnas search` asks for the bar while a new study's images are decoded."""
    from flnas.api.assembly import open_assembly

    for name, progress in (("quiet", False), ("shown", True)):
        open_assembly(name, str(tmp_path / "s.db"), data=synth_dir, image_size=16, cache_dir=tmp_path / name,
                      progress=progress)
        err = capsys.readouterr().err
        assert ("decoding images" in err) is progress, name

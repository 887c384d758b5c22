"""``--precision`` / ``--channels-last`` on every command that trains, and channels_last's default rule.

`flnas search` and `flnas evaluate` are covered by tests/test_precision.py; here `flnas baselines`,
`flnas experiment` and their API functions: the settings are checked like search's (fp16 refused on a CPU
before anything is created), stored in a new study's setup, reach the EvaluatorConfig that trains, are
recorded with every trial, and conflict with an existing study's setup as search's do. The baselines train
in the study's precision when none is given.
"""

from __future__ import annotations

import inspect

import pytest
import typer

import flnas
from flnas.api import baselines, experiment, search
from flnas.api.evaluation import evaluate
from flnas.api.options import TRAIN_OPTIONS
from flnas.cli.main import app
from flnas.errors import FlnasError, StudyError
from flnas.evaluate import EvaluatorConfig
from flnas.evaluate import evaluator as evaluator_mod
from flnas.evaluate.config import channels_last_default
from flnas.evaluate.device import FP16_NEEDS_CUDA
from flnas.study.storage import get_setup, open_study, set_setup
from test_evaluate_cli import run_cli
from test_report import SETUP

# a baseline at 16x16 for one epoch: the smallest training a baseline command does
SMALL = ["--image-size", "16", "--epochs", "1", "--batch-size", "32", "--no-hardware"]
SMALL_API = {"image_size": 16, "epochs": 1, "batch_size": 32, "no_hardware": True}


@pytest.fixture()
def trained_with(monkeypatch):
    """The EvaluatorConfig of every train_model call (the training itself runs as usual)."""
    seen: list[EvaluatorConfig] = []
    real = evaluator_mod.train_model

    def spy(model, *args, **kwargs):
        config = next(a for a in (*args, *kwargs.values()) if isinstance(a, EvaluatorConfig))
        seen.append(config)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(evaluator_mod, "train_model", spy)
    return seen


def _trial_configs(url, name):
    study = open_study(name, url, create=False)
    return [(t.user_attrs.get("kind"), t.user_attrs["metrics"]["config"]) for t in study.get_trials()]


# -- every command that trains takes every evaluator option, under one name on the CLI and in the API -----


def _cli_params(command: str) -> set[str]:
    return {p.name for p in typer.main.get_command(app).commands[command].params}


@pytest.mark.parametrize(
    ("command", "function"),
    [("search", search), ("evaluate", evaluate), ("baselines", baselines), ("experiment", experiment)],
)
def test_every_training_command_takes_every_evaluator_option(command, function):
    options = set(TRAIN_OPTIONS)
    assert options <= _cli_params(command)
    assert options <= set(inspect.signature(function).parameters)
    parameters = inspect.signature(function).parameters
    assert parameters["precision"].default is None and parameters["channels_last"].default is None  # not given


# -- baselines ----------------------------------------------------------------------------------------------


def test_baselines_cli_stores_the_precision_trains_and_records_it(synth_dir, tmp_path, capsys, trained_with):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = ["baselines", "--data", synth_dir, "--study", "b", "--storage", url, *SMALL, "--cache-dir", tmp_path / "c",
             "--device", "cpu"]
    code, _out, err = run_cli([*study, "--models", "mobilenetv2", "--precision", "bf16"], capsys)
    assert code == 0, err
    assert "bf16 + channels_last" in err  # the study line says how its models train
    train = get_setup(open_study("b", url, create=False))["train"]
    assert (train["precision"], train["channels_last"]) == ("bf16", True)  # channels_last: the bf16 default
    assert [(c.precision, c.channels_last) for c in trained_with] == [("bf16", True)]
    assert [(kind, c["precision"], c["channels_last"]) for kind, c in _trial_configs(url, "b")] == [
        ("baseline", "bf16", True)
    ]

    # another baseline later, no flags: it trains as the study does (the models of a table train alike)
    code, _out, err = run_cli([*study, "--models", "mobilenetv1"], capsys)
    assert code == 0, err
    assert [(c.precision, c.channels_last) for c in trained_with] == [("bf16", True)] * 2


@pytest.fixture()
def fp32_study(tmp_path):
    """A study stored in fp32 (no precision key: from before the setting), nothing trained."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    set_setup(open_study("t", url), SETUP)
    return url


@pytest.mark.parametrize(
    ("flags", "sentence"),
    [
        (["--precision", "bf16"], "--precision bf16 (the study has fp32)"),
        (["--channels-last"], "--channels-last (the study trains in the usual memory format)"),
    ],
)
def test_baselines_refuse_a_precision_that_differs_from_the_study_as_search_does(
    fp32_study, flags, sentence, capsys, trained_with
):
    for command in ("baselines", "search"):  # the same sentence and exit code from both
        code, _out, err = run_cli([command, "--study", "t", "--storage", fp32_study, *flags], capsys)
        assert code == 2 and sentence in " ".join(err.split()) and "drop these flags" in " ".join(err.split())
    assert trained_with == []


@pytest.mark.parametrize("command", ["baselines", "experiment"])
def test_fp16_on_a_cpu_is_refused_before_anything_is_created(command, synth_dir, tmp_path, capsys, trained_with):
    store, out = tmp_path / "s.db", tmp_path / "exp"
    argv = {
        "baselines": ["baselines", "--data", synth_dir, "--storage", store],
        "experiment": ["experiment", "--data", synth_dir, "--out", out],
    }[command]
    code, _out, err = run_cli([*argv, "--precision", "fp16", "--device", "cpu"], capsys)
    assert code == 2 and FP16_NEEDS_CUDA in " ".join(err.split()) and "Traceback" not in err
    assert not store.exists() and not out.exists() and trained_with == []


def test_the_api_baselines_take_and_store_the_settings(synth_dir, tmp_path, trained_with):
    url = f"sqlite:///{tmp_path / 'api.db'}"
    done = flnas.baselines(synth_dir, models="mobilenetv2", study="a", storage=url, cache_dir=tmp_path / "cache",
                           device="cpu", precision="bf16", channels_last=False, **SMALL_API)
    assert [c.status for c in done] == ["ok"] or [c.status for c in done] == ["degenerate"]
    train = get_setup(open_study("a", url, create=False))["train"]
    assert (train["precision"], train["channels_last"]) == ("bf16", False)  # an explicit value wins
    assert [(c.precision, c.channels_last) for c in trained_with] == [("bf16", False)]
    with pytest.raises(StudyError, match=r"--precision fp32 \(the study has bf16\)"):
        flnas.baselines(synth_dir, models="mobilenetv1", study="a", storage=url, precision="fp32")
    with pytest.raises(FlnasError, match="needs a CUDA GPU"):
        flnas.baselines(synth_dir, study="b", storage=url, precision="fp16", device="cpu")
    assert open_study("b", url, create=True).user_attrs == {}  # nothing was written for it


# -- experiment ---------------------------------------------------------------------------------------------


def test_experiment_cli_trains_the_baselines_and_the_search_in_the_given_precision(
    synth_dir, tmp_path, capsys, trained_with
):
    out = tmp_path / "exp"
    argv = ["experiment", "--data", synth_dir, *SMALL, "--iters", "1", "--designer", "heuristic", "--no-fahana",
            "--models", "mobilenetv2", "--out", out, "--formats", "md", "--precision", "bf16", "--no-channels-last",
            "--device", "cpu"]
    code, _out, err = run_cli(argv, capsys)
    assert code == 0, err
    url = f"sqlite:///{out / 'flnas.db'}"
    train = get_setup(open_study("experiment", url, create=False))["train"]
    assert (train["precision"], train["channels_last"]) == ("bf16", False)
    assert [(c.precision, c.channels_last) for c in trained_with] == [("bf16", False)] * 2  # baseline, candidate
    recorded = _trial_configs(url, "experiment")
    assert sorted(kind for kind, _c in recorded) == ["baseline", "search"]
    assert {(c["precision"], c["channels_last"]) for _kind, c in recorded} == {("bf16", False)}
    md = (out / "report" / "table.md").read_text(encoding="utf-8")
    assert "precision=bf16, channels_last=False" in md  # Table I says how its rows were trained

    code, _out, err = run_cli([*argv[:-5], "--precision", "fp32", "--device", "cpu"], capsys)  # resume, other value
    assert code == 2 and "--precision fp32 (the study has bf16)" in " ".join(err.split())


def test_the_api_experiment_takes_the_settings_and_checks_them_first(tmp_path):
    out = tmp_path / "exp"
    with pytest.raises(FlnasError, match="needs a CUDA GPU"):
        flnas.experiment(out=out, precision="fp16", channels_last=True, device="cpu")
    assert not out.exists()


# -- channels_last's default ---------------------------------------------------------------------------------


def test_channels_last_defaults_on_under_mixed_precision_and_off_in_fp32():
    assert EvaluatorConfig().channels_last is False  # fp32 (the paper preset): unchanged, bit for bit
    assert EvaluatorConfig(precision="bf16").channels_last is True
    assert EvaluatorConfig(precision="fp16").channels_last is True
    assert EvaluatorConfig(precision="bf16", channels_last=False).channels_last is False  # given: kept
    assert EvaluatorConfig(channels_last=True).channels_last is True
    assert [channels_last_default(p) for p in ("fp32", "bf16", "fp16", "BF16")] == [False, True, True, True]


def test_stored_settings_read_back_unchanged():
    # a study made after --precision existed but before this default: bf16 in the usual layout stays so
    stored = {"epochs": 3, "precision": "bf16", "channels_last": False}
    assert EvaluatorConfig.from_dict(stored).channels_last is False
    assert EvaluatorConfig.from_dict(EvaluatorConfig.from_dict(stored).to_dict()) == EvaluatorConfig.from_dict(stored)
    before = EvaluatorConfig.from_dict({"epochs": 3})  # a study from before both settings: fp32, NCHW
    assert (before.precision, before.channels_last) == ("fp32", False)
    assert EvaluatorConfig().to_dict()["channels_last"] is False  # what a new study stores: a value, not None


def test_a_new_study_stores_the_resolved_default_and_an_old_one_keeps_its_own(tmp_path, synth_dir):
    from flnas.api.assembly import open_assembly

    url = f"sqlite:///{tmp_path / 'r.db'}"
    common = {"data": synth_dir, "image_size": 16, "cache_dir": tmp_path / "cache"}
    new = open_assembly("new", url, train={"precision": "bf16"}, **common)
    assert (new.setup["train"]["precision"], new.setup["train"]["channels_last"]) == ("bf16", True)
    fp32 = open_assembly("fp32", url, train={}, **common)
    assert (fp32.setup["train"]["precision"], fp32.setup["train"]["channels_last"]) == ("fp32", False)

    old = open_study("old", url)
    old_setup = {**new.setup, "train": {**new.setup["train"], "channels_last": False}}  # bf16, usual layout
    set_setup(old, old_setup)
    resumed = open_assembly("old", url, train={"precision": "bf16"})  # same precision again: no conflict
    assert resumed.resumed and resumed.setup == old_setup and resumed.evaluator.config.channels_last is False


def test_search_says_how_its_study_trains_and_trains_so(synth_dir, tmp_path, capsys, trained_with):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    argv = ["search", "--data", synth_dir, "--storage", url, "--study", "q", "--iters", "1", "--designer", "random",
            "--cache-dir", tmp_path / "c", *SMALL, "--device", "cpu", "--out", tmp_path / "runs"]
    code, out, err = run_cli([*argv, "--precision", "bf16"], capsys)
    assert code in (0, 1), err  # 1: the one random candidate may be degenerate; it was trained either way
    assert "new study 'q'" in out and "class-weighted loss, bf16 + channels_last)" in " ".join(out.split())
    assert [(c.precision, c.channels_last) for c in trained_with] == [("bf16", True)]

"""Resume: kill -9 the search while a candidate trains, run it again, lose and retrain nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from flnas.study.history import INTERRUPTED


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    except Exception:  # the study or the file does not exist yet
        return []


# The search pauses inside the second candidate's training (a patched train_model writes a marker and
# sleeps), so the kill lands while a candidate trains however fast or busy the machine is: no polling race.
PAUSING_SEARCH = """
import os, pathlib, sys, time
import flnas.evaluate.evaluator as evaluator

marker, calls, train_model = pathlib.Path(os.environ["PAUSE_MARKER"]), [], evaluator.train_model

def paused(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        marker.write_text("paused")
        time.sleep(600)
    return train_model(*args, **kwargs)

evaluator.train_model = paused
from flnas.cli.main import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_sigkill_during_training_then_resume(synth_dir, tmp_path):
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    flags = [
        "search",
        "--data",
        str(synth_dir),
        "--designer",
        "heuristic",
        "--iters",
        "3",
        "--image-size",
        "32",
        "--epochs",
        "3",
        "--patience",
        "3",
        "--no-hardware",
        "--study",
        "kill",
        "--storage",
        str(db),
        "--out",
        str(tmp_path / "run"),
    ]
    args = [sys.executable, "-m", "flnas", *flags]
    marker = tmp_path / "paused"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PAUSE_MARKER": str(marker)}
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSING_SEARCH, *flags], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300  # a bound on a stuck run, not a timing assumption
    killed_trial = None
    try:
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if marker.exists():
            running = [t for t in _trials(url, "kill") if t.state == TrialState.RUNNING and t.user_attrs.get("spec")]
            proc.send_signal(signal.SIGKILL)
            killed_trial = running[0].number if running else None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        output = proc.stdout.read().decode()[-2000:]
        proc.stdout.close()
    assert killed_trial is not None, output
    before = {t.number: t.datetime_complete for t in _trials(url, "kill") if t.state == TrialState.COMPLETE}
    assert before and _trials(url, "kill")[killed_trial].state == TrialState.RUNNING

    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert (
        "resuming study 'kill'" in again.stdout and f"trial #{killed_trial} was interrupted" in again.stdout
    )
    trials = _trials(url, "kill")
    after = {t.number: t.datetime_complete for t in trials if t.state == TrialState.COMPLETE}
    assert {n: after[n] for n in before} == before  # finished candidates were neither lost nor retrained
    killed = trials[killed_trial]
    assert killed.state == TrialState.FAIL and killed.user_attrs["reason"] == INTERRUPTED
    ok = [t for t in trials if t.user_attrs.get("status") == "ok"]
    assert len(ok) == 3 and sorted(t.user_attrs["iteration"] for t in ok) == [1, 2, 3]
    assert (tmp_path / "run" / "best" / "spec.json").is_file()

    third = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0 and "0 new trial(s)" in third.stdout  # nothing left to do
    assert len(_trials(url, "kill")) == len(trials)


def test_setup_round_trip_rebuilds_data_task_and_evaluator(synth_dir, tmp_path):
    from flnas.data import prepare_data
    from flnas.evaluate.config import EvaluatorConfig
    from flnas.space import load_choices
    from flnas.study.setup import (
        choices_from_setup,
        data_from_setup,
        evaluator_from_setup,
        make_setup,
        setup_conflicts,
        task_from_setup,
    )

    data = prepare_data(synth_dir, image_size=32, seed=0, cache_dir=tmp_path / "c", progress=False)
    setup = make_setup(
        data=data,
        data_arg=synth_dir,
        subset=None,
        seed=0,
        image_size=32,
        cache_dir=tmp_path / "c",
        train=EvaluatorConfig(epochs=2),
        env="Jetson Nano",
        choices=load_choices(None),
    )
    again = data_from_setup(setup)
    assert again.classes == data.classes and len(again.splits["val"]) == len(data.splits["val"])
    task = task_from_setup(setup)
    assert (task.image_size, task.env, task.classes) == (32, "Jetson Nano", data.classes)
    assert choices_from_setup(setup) == load_choices(None)
    evaluator = evaluator_from_setup(setup, data=again, seed=3)
    assert evaluator.config.epochs == 2 and evaluator.config.seed == 3
    assert setup_conflicts(setup, {"image_size": 32, "train": {"epochs": 2}}) == []
    assert setup_conflicts(setup, {"env": "Raspberry Pi 4"}) == [
        "--env Raspberry Pi 4 (the study has Jetson Nano)"
    ]

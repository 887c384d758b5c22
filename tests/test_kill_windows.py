"""SIGKILL a real search at the moments around a candidate's files, then resume it.

The search runs in a subprocess that pauses at the chosen moment (a patched function writes a marker file
and sleeps); the test waits for the marker, kills the process with SIGKILL and runs the search again.
A candidate whose files were complete is recorded, not trained again; ``candidates/<n>/`` is never partial.
"""

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

PAUSING_SEARCH = """
import os, pathlib, sys, time
import flnas.evaluate.artifacts as artifacts
from flnas.study import recording

marker, point = pathlib.Path(os.environ["PAUSE_MARKER"]), os.environ["PAUSE_AT"]

def pause():
    marker.write_text("paused")
    time.sleep(600)

if point == "writing":  # model.pt, model.onnx, model.py, spec.json, predictions.csv written; metrics.json next
    write_json = artifacts.write_json
    def paused_write(path, obj):
        if path.name == "metrics.json":
            pause()
        return write_json(path, obj)
    artifacts.write_json = paused_write
elif point == "files written":  # the folder is complete and committed; the study does not know yet
    record_trial = recording.record_trial
    def paused_record(study, trial, status, *args, **kwargs):
        if status == "ok":
            pause()
        return record_trial(study, trial, status, *args, **kwargs)
    recording.record_trial = paused_record
else:  # "recorded": the study has the result; the folder is not renamed into place yet
    recording.publish = lambda *args, **kwargs: pause()

from flnas.cli.main import main
main(sys.argv[1:])
"""


def _search_args(synth_dir, tmp_path) -> list[str]:
    return [
        "search",
        "--data",
        str(synth_dir),
        "--designer",
        "random",
        "--iters",
        "1",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--no-hardware",
        "--study",
        "kill",
        "--storage",
        str(tmp_path / "s.db"),
        "--out",
        str(tmp_path / "run"),
    ]


def _kill_when_paused(args: list[str], point: str, tmp_path) -> None:
    marker = tmp_path / "paused"
    env = {**os.environ, "PAUSE_AT": point, "PAUSE_MARKER": str(marker), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSING_SEARCH, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300  # a bound on a stuck run, not a timing assumption
    try:
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.stdout.read().decode()[-2000:] if proc.poll() is not None else "no pause"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("point", ["writing", "files written", "recorded"])
def test_sigkill_around_a_candidates_files_then_resume(synth_dir, tmp_path, point):
    args = _search_args(synth_dir, tmp_path)
    _kill_when_paused(args, point, tmp_path)
    candidates = tmp_path / "run" / "candidates"
    assert not (candidates / "0").exists()  # never a partial candidates/<n>/ folder
    storage = f"sqlite:///{tmp_path / 's.db'}"
    state = optuna.load_study(study_name="kill", storage=storage).get_trials()[0].state
    assert state == (TrialState.COMPLETE if point == "recorded" else TrialState.RUNNING)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    again = subprocess.run(
        [sys.executable, "-m", "flnas", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    trials = optuna.load_study(study_name="kill", storage=storage).get_trials()
    assert sorted(os.listdir(candidates)) == (["1"] if point == "writing" else ["0"])  # nothing hidden left
    folder = candidates / sorted(os.listdir(candidates))[0]
    assert {"spec.json", "model.pt", "model.onnx", "model.py", "predictions.csv", "metrics.json"} <= set(
        os.listdir(folder)
    )
    if point == "writing":  # killed before the result was committed: trained again, like a kill in training
        assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["reason"] == INTERRUPTED
        assert "1 new trial(s)" in again.stdout and trials[1].user_attrs["status"] == "ok"
        return
    assert len(trials) == 1 and trials[0].state == TrialState.COMPLETE and trials[0].user_attrs["status"] == "ok"
    assert "1/1 evaluated candidates; 0 new trial(s)" in again.stdout  # not trained again
    assert ("trial #0 had finished before the last run stopped" in again.stdout) == (point == "files written")

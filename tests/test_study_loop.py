"""Algorithm 1 over an Optuna study, with a fake evaluator: what is stored, duplicates, failures, counting."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from optuna.trial import TrialState

from flnas.designers.base import DesignContext, Designer, Proposal
from flnas.space import example_spec, load_choices, spec_key
from flnas.study.history import INTERRUPTED, STALE, load_candidates
from flnas.study.loop import run_search
from flnas.study.storage import open_study
from test_designers import TASK


def spec_with(channels: int) -> dict:
    spec = example_spec().model_dump(mode="json")
    spec["layers"][0]["channels"] = channels
    return spec


class FakeEvaluator:
    """Metrics that depend on the spec; fails for specs whose first layer has ``fail_channels``."""

    def __init__(self, fail_channels: int | None = None, raise_channels: int | None = None):
        self.calls: list[dict] = []
        self.fail_channels, self.raise_channels = fail_channels, raise_channels

    def evaluate(self, spec, *, name=None, out_dir=None, on_epoch=None):
        self.calls.append(spec)
        ch = spec["layers"][0]["channels"]
        if ch == self.raise_channels:
            raise RuntimeError("boom")
        if on_epoch is not None:
            on_epoch(1, {"epoch": 1, "epochs": 1, "val_loss": 1.0})
        if ch == self.fail_channels:
            return SimpleNamespace(
                status="failed",
                reason="loss became nan at epoch 1, batch 1",
                metrics={"params": 10, "val": None},
            )
        acc = 0.5 + ch / 1000
        metrics = {
            "params": 1000 + ch,
            "val": {
                "accuracy": acc,
                "balanced_accuracy": acc,
                "unfairness": None if ch == 8 else ch / 1000,
                "groups": {"male": {"accuracy": acc, "count": 5}},
            },
            "test": {"accuracy": 0.1},
            "latency_s": float("nan"),
        }
        return SimpleNamespace(status="ok", reason=None, metrics=metrics)


class Scripted(Designer):
    """Replays a list of proposals (spec dicts, or error strings)."""

    name = "scripted"

    def __init__(self, script):
        self.script = list(script)
        self.contexts: list[DesignContext] = []
        self.observed = []

    def propose(self, context, k=1):
        self.contexts.append(context)
        out = []
        for _ in range(k):
            item = self.script.pop(0) if self.script else "script exhausted"
            if isinstance(item, str):
                out.append(Proposal(spec=None, record={"prompt": "p", "reply": "junk"}, error=item))
            else:
                out.append(
                    Proposal(
                        spec=item,
                        record={
                            "prompt": "the prompt",
                            "reply": "the reply",
                            "attempts": [{"attempt": 1, "errors": []}],
                            "usage": {"total_tokens": 42},
                        },
                    )
                )
        return out

    def observe(self, candidate):
        self.observed.append(candidate.number)

    def usage(self):
        return {"total_tokens": 42 * len(self.observed)}


@pytest.fixture()
def study(tmp_path):
    return open_study("loop", str(tmp_path / "s.db"))


def search(study, designer, evaluator, **kw):
    kw.setdefault("iters", 3)
    return run_search(
        study,
        designer=designer,
        evaluator=evaluator,
        task=TASK,
        choices=load_choices(None),
        log=lambda _m: None,
        **kw,
    )


def test_loop_records_every_field(study, tmp_path):
    ev, epochs = FakeEvaluator(), []
    designer = Scripted([spec_with(16), spec_with(32), spec_with(8)])
    result = search(
        study, designer, ev, out_dir=tmp_path / "out", seed=7, on_epoch=lambda e, _l: epochs.append(e)
    )
    assert len(ev.calls) == 3 and epochs == [1, 1, 1]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert [t.user_attrs["iteration"] for t in trials] == [1, 2, 3]
    t0 = trials[0]
    assert t0.values == [pytest.approx(0.516), pytest.approx(0.016), 1016]
    assert trials[2].values[1] == 1.0  # undefined unfairness is stored as the worst value
    assert trials[2].user_attrs["metrics"]["val"]["unfairness"] is None
    attrs = t0.user_attrs
    assert attrs["kind"] == "search" and attrs["designer"] == "scripted" and attrs["status"] == "ok"
    assert attrs["seed"] == 7 and attrs["reason"] is None
    assert attrs["spec"] == spec_with(16) and attrs["spec_key"] == spec_key(spec_with(16))
    assert attrs["metrics"]["latency_s"] is None  # NaN is stored as null
    rec = attrs["record"]
    assert (
        rec["prompt"] == "the prompt" and rec["reply"] == "the reply" and rec["usage"]["total_tokens"] == 42
    )
    assert rec["attempts"] == [{"attempt": 1, "errors": []}]
    assert rec["eval_seconds"] >= 0 and rec["owner"]["pid"] > 0 and rec["artifacts"].endswith("candidates/0")
    assert designer.observed == [0, 1, 2]
    # the designer saw the history so far and the best (both within 0.02 of 0.532; #0 is fairer)
    assert [c.number for c in designer.contexts[2].history] == [0, 1]
    assert designer.contexts[2].best.number == 0 and designer.contexts[2].iteration == 3
    assert result.evaluated == 3 and result.target == 3 and result.stopped is None
    assert result.usage == {"total_tokens": 126} and result.best is not None


def test_duplicate_is_recorded_invalid_and_not_retrained(study):
    ev = FakeEvaluator()
    result = search(study, Scripted([spec_with(16), spec_with(16), spec_with(32), spec_with(64)]), ev)
    assert len(ev.calls) == 3
    cands = load_candidates(study)
    assert [(c.iteration, c.status) for c in cands] == [(1, "ok"), (2, "invalid"), (2, "ok"), (3, "ok")]
    assert cands[1].reason == "already tried (trial #0)"
    assert study.get_trials()[1].state == TrialState.FAIL
    assert result.evaluated == 3


def test_failed_evaluation_is_recorded_counts_and_the_search_goes_on(study):
    ev = FakeEvaluator(fail_channels=32, raise_channels=64)
    result = search(
        study, Scripted([spec_with(16), spec_with(32), spec_with(64), spec_with(24)]), ev, iters=4
    )
    cands = load_candidates(study)
    assert [c.status for c in cands] == ["ok", "failed", "failed", "ok"]
    assert cands[1].reason.startswith("loss became nan") and cands[1].metrics["params"] == 10
    assert cands[2].reason == "evaluator error: RuntimeError: boom"
    assert result.evaluated == 4 and result.best.number == 0


def test_invalid_proposals_do_not_count_and_the_loop_always_ends(study, tmp_path):
    designer = Scripted(
        [
            "the LLM endpoint failed 4 times in a row",
            {"layers": [{"type": "conv", "channels": 7}]},
            spec_with(16),
        ]
    )
    result = search(study, designer, FakeEvaluator(), iters=1)
    cands = load_candidates(study)
    assert [(c.iteration, c.status) for c in cands] == [(1, "invalid"), (1, "invalid"), (1, "ok")]
    assert cands[0].reason == "the LLM endpoint failed 4 times in a row"
    assert "channels" in cands[1].reason and cands[1].spec == {"layers": [{"type": "conv", "channels": 7}]}
    assert study.get_trials()[0].user_attrs["record"]["reply"] == "junk"
    assert result.evaluated == 1

    stuck = open_study(
        "stuck", str(tmp_path / "s.db")
    )  # a designer that never succeeds: 3 passes per iteration
    result = search(stuck, Scripted([]), FakeEvaluator(), iters=2)
    assert result.passes == 6 and result.evaluated == 0 and "run again" in result.stopped
    assert {c.status for c in load_candidates(stuck)} == {"invalid"}


def test_each_designer_gets_its_own_budget_in_a_shared_study(study):
    first = Scripted([spec_with(16), spec_with(32)])
    search(study, first, FakeEvaluator(), iters=2)

    class Other(Scripted):
        name = "other"

    # the same spec as the first designer's is not a duplicate for the second: its search is its own
    second = Other([spec_with(16), spec_with(64)])
    result = search(study, second, FakeEvaluator(), iters=2)
    assert result.evaluated == 2 and [c.designer for c in result.candidates] == ["other", "other"]
    assert [c.iteration for c in result.candidates] == [1, 2]
    assert all(c.designer == "other" for c in second.contexts[-1].history)
    assert result.best.spec["layers"][0]["channels"] == 64
    assert len(study.get_trials()) == 4


def test_several_candidates_per_iteration(study):
    ev = FakeEvaluator()
    result = search(study, Scripted([spec_with(c) for c in (8, 16, 24, 32)]), ev, iters=2, k=2)
    assert [c.iteration for c in load_candidates(study)] == [1, 1, 2, 2]
    assert result.evaluated == 4 and result.passes == 2


def test_running_trial_is_marked_interrupted_and_its_spec_is_trained_again(study):
    search(study, Scripted([spec_with(16)]), FakeEvaluator(), iters=1)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    trial = study.ask()  # what a killed process leaves behind
    for key, value in {
        "kind": "search",
        "iteration": 2,
        "designer": "scripted",
        "status": "running",
        "spec": spec_with(32),
        "record": {"owner": {"host": _host(), "pid": int(dead.stdout)}, "prompt": "the prompt"},
    }.items():
        trial.set_user_attr(key, value)
    ev = FakeEvaluator()
    designer = Scripted([spec_with(64)])
    result = search(study, designer, ev, iters=3)
    assert result.interrupted == [1]
    cands = load_candidates(study)
    assert (cands[1].status, cands[1].reason) == ("failed", INTERRUPTED)
    assert [(c.number, c.iteration, c.status) for c in cands[2:]] == [(2, 2, "ok"), (3, 3, "ok")]
    assert ev.calls == [spec_with(32), spec_with(64)]  # the interrupted spec is trained again, trial #0 is not
    assert [c.iteration for c in designer.contexts] == [3]  # iteration 2 was not designed a second time
    rerun = study.get_trials()[2].user_attrs["record"]
    assert (rerun["rerun_of"], rerun["reruns"], rerun["prompt"]) == (1, 1, "the prompt")
    assert result.evaluated == 3


def test_an_interrupted_spec_is_rerun_at_most_twice_then_its_iteration_is_designed_again(study):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = {"host": _host(), "pid": int(dead.stdout)}
    for reruns in range(3):  # the original and two reruns, each killed
        trial = study.ask()
        record = {"owner": owner, **({"rerun_of": trial.number - 1, "reruns": reruns} if reruns else {})}
        for key, value in {"kind": "search", "iteration": 1, "designer": "scripted", "status": "running",
                           "spec": spec_with(32), "record": record}.items():
            trial.set_user_attr(key, value)
    ev = FakeEvaluator()
    result = search(study, Scripted([spec_with(64)]), ev, iters=1)
    assert result.interrupted == [0, 1, 2] and ev.calls == [spec_with(64)] and result.evaluated == 1


def test_a_live_workers_trial_is_waited_for_and_rerun_when_its_process_dies(study):
    search(study, Scripted([spec_with(16)]), FakeEvaluator(), iters=1)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "flnas"])
    try:
        trial = study.ask()
        for key, value in {"kind": "search", "iteration": 2, "designer": "scripted", "status": "running",
                           "spec": spec_with(32), "record": {"owner": {"host": _host(), "pid": live.pid}}}.items():
            trial.set_user_attr(key, value)
        ev, seen = FakeEvaluator(), {}

        def log(message):
            if message.startswith("waiting for trial(s) #1") and not seen:
                # iteration 2 is held by the live worker: this one designed and trained iteration 3 only
                seen["calls"], seen["state"] = list(ev.calls), study.get_trials()[1].state
                live.kill()
                live.wait()

        designer = Scripted([spec_with(64)])
        result = run_search(study, designer=designer, evaluator=ev, task=TASK,
                            choices=load_choices(None), iters=3, log=log, poll=0.05)
    finally:
        live.kill()
        live.wait()
    assert seen == {"calls": [spec_with(64)], "state": TrialState.RUNNING}
    assert [c.spec for c in designer.contexts[0].pending] == [spec_with(32)]  # not to be proposed again
    assert ev.calls == [spec_with(64), spec_with(32)] and result.interrupted == [1] and result.evaluated == 3
    assert [(c.iteration, c.status) for c in load_candidates(study)] == [(1, "ok"), (2, "failed"), (3, "ok"), (2, "ok")]


def test_a_worker_waits_for_the_first_candidate_before_designing(study):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "flnas"])
    try:
        trial = study.ask()
        for key, value in {"kind": "search", "iteration": 1, "designer": "scripted", "status": "running",
                           "spec": spec_with(32), "record": {"owner": {"host": _host(), "pid": live.pid}}}.items():
            trial.set_user_attr(key, value)
        designer, seen = Scripted([spec_with(64)]), []

        def log(message):
            if message.startswith("waiting for trial(s) #0") and not seen:
                seen.append(list(designer.contexts))  # nothing designed while the first candidate trains
                live.kill()
                live.wait()

        result = run_search(study, designer=designer, evaluator=FakeEvaluator(), task=TASK,
                            choices=load_choices(None), iters=2, log=log, poll=0.05)
    finally:
        live.kill()
        live.wait()
    assert seen == [[]] and result.evaluated == 2


def _host() -> str:
    import socket

    return socket.gethostname()


def test_a_slow_worker_whose_trial_was_given_up_drops_its_result_and_goes_on(study):
    class GivenUp(FakeEvaluator):
        """The first evaluation finds its trial failed by another worker meanwhile (no heartbeat in time)."""

        def evaluate(self, spec, *, name=None, out_dir=None, on_epoch=None):
            if not self.calls:
                study.tell(int(name.split("-")[1]), state=TrialState.FAIL)
            return super().evaluate(spec, name=name, out_dir=out_dir, on_epoch=on_epoch)

    ev, logs = GivenUp(), []
    result = run_search(study, designer=Scripted([spec_with(16)]), evaluator=ev, task=TASK,
                        choices=load_choices(None), iters=1, log=logs.append)
    cands = load_candidates(study)
    assert [(c.number, c.status) for c in cands] == [(0, "failed"), (1, "ok")]
    assert cands[0].reason == STALE and ev.calls == [spec_with(16)] * 2  # its spec is trained again
    assert any("another worker gave this trial up" in line for line in logs) and result.evaluated == 1

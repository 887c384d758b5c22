"""Workers that design at the same moment: the later one designs again instead of recording a duplicate.

Another worker is simulated inside the designer call (it takes the very spec this worker is about to propose,
exactly what happens when two workers design from the same history), so the collision is certain, not a
matter of timing. The LLM designer claims its slot before it calls the endpoint (checked from inside a
real HTTP chat-completions server while the request is in flight). A re-design runs outside the claim
lock: a third worker (a thread of its own, with its own connection and lock handle) claims while the
re-design is in flight, ordered by events, never by wall-clock time.
"""

from __future__ import annotations

import json
import threading

import optuna
from optuna.trial import TrialState

from flnas.designers.llm import LLMDesigner
from flnas.space import load_choices, spec_key
from flnas.study.history import load_candidates, open_slot
from flnas.study.loop import run_search
from flnas.study.recording import record_trial
from flnas.study.storage import open_study
from flnas.study.workers import claim_lock
from llm_server import llm_server  # noqa: F401  (fixture)
from test_designers import TASK
from test_study_loop import FakeEvaluator, Scripted, spec_with


def _other_worker_takes(study, spec: dict, iteration: int, designer: str = "scripted") -> int:
    """Another worker (on another machine, alive) claims ``iteration`` and assigns ``spec`` to it."""
    trial = study.ask()
    attrs = {"kind": "search", "iteration": iteration, "designer": designer, "status": "running", "spec": spec,
             "spec_key": spec_key(spec), "record": {"owner": {"host": "another-machine", "pid": 1}}}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial.number


class Collides(Scripted):
    """On its first call, another worker takes the spec this designer is about to return."""

    def __init__(self, study, script, iteration: int = 2):
        super().__init__(script)
        self.study, self.iteration = study, iteration
        self.other: int | None = None

    def propose(self, context, k=1):
        if self.other is None:
            self.other = _other_worker_takes(self.study, self.script[0], self.iteration)
        return super().propose(context, k)


def _other_worker_finishes(study, number: int) -> None:
    trial = study.get_trials()[number]
    if trial.state == TrialState.RUNNING:
        metrics = {"params": 1000, "val": {"accuracy": 0.5, "balanced_accuracy": 0.5, "unfairness": 0.1}}
        live = optuna.trial.Trial(study, trial._trial_id)
        record_trial(study, live, "ok", None, metrics, {}, values=[0.5, 0.1, 1000.0])


class FinishesTheOther(FakeEvaluator):
    """While this worker trains, the other worker finishes its candidate."""

    def __init__(self, study, designer: Collides):
        super().__init__()
        self.study, self.designer = study, designer

    def evaluate(self, spec, *, name=None, out_dir=None, on_epoch=None):
        if self.designer.other is not None:
            _other_worker_finishes(self.study, self.designer.other)
        return super().evaluate(spec, name=name, out_dir=out_dir, on_epoch=on_epoch)


def test_a_spec_another_worker_took_meanwhile_is_designed_again_not_recorded_invalid(tmp_path):
    study = open_study("redesign", str(tmp_path / "s.db"))
    designer = Collides(study, [spec_with(16), spec_with(32)])
    evaluator, logs = FinishesTheOther(study, designer), []
    result = run_search(study, designer=designer, evaluator=evaluator, task=TASK, choices=load_choices(None),
                        iters=2, log=logs.append)
    candidates = load_candidates(study)
    assert [(c.number, c.iteration, c.status) for c in candidates] == [(0, 1, "ok"), (1, 2, "ok")]
    assert candidates[0].spec == spec_with(32) and candidates[1].spec == spec_with(16)
    assert evaluator.calls == [spec_with(32)]  # nothing trained twice
    # the re-design saw the other worker's spec among the pending ones (what every designer avoids)
    assert len(designer.contexts) == 2 and [c.spec for c in designer.contexts[1].pending if c.spec] == [spec_with(16)]
    assert study.get_trials()[0].user_attrs["record"]["redesigns"] == 1 and result.redesigns == 1
    assert any("another worker took the same design meanwhile" in line for line in logs)
    assert result.evaluated == 2 and result.passes == 1


def test_a_designer_that_proposes_the_taken_spec_again_is_recorded_invalid(tmp_path):
    study = open_study("again", str(tmp_path / "s.db"))
    designer = Collides(study, [spec_with(16), spec_with(16), spec_with(32)])
    evaluator = FinishesTheOther(study, designer)

    def log(message):  # the next pass waits for the other worker's (first) candidate: it finishes
        if message.startswith("waiting for trial(s) #1"):
            _other_worker_finishes(study, 1)

    result = run_search(study, designer=designer, evaluator=evaluator, task=TASK, choices=load_choices(None),
                        iters=2, log=log, poll=0.05)
    candidates = load_candidates(study)
    assert (candidates[0].status, candidates[0].reason) == ("invalid", "being trained by another worker (trial #1)")
    assert [(c.iteration, c.status) for c in candidates[1:]] == [(2, "ok"), (1, "ok")]
    assert evaluator.calls == [spec_with(32)] and result.evaluated == 2


def test_the_llm_designer_claims_its_slot_before_it_calls_the_endpoint(tmp_path, llm_server):  # noqa: F811
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = open_study("llm", url)
    seen = []

    def during_the_call(_body):  # in the server, while the designer waits for its answer
        history = load_candidates(open_study("llm", url, create=False))
        seen.append(([(c.iteration, c.designer, c.status) for c in history], open_slot(history, iters=1, k=1)))

    llm_server.on_request = during_the_call
    llm_server.reply('{"layers": [{"type": "conv", "channels": 16, "stride": 2}, {"type": "conv", "channels": 32, '
                     '"stride": 2}], "head": {"pool": "avg"}}')
    designer = LLMDesigner(base_url=llm_server.base_url, model="fake", timeout=5.0, seed=0)
    result = run_search(study, designer=designer, evaluator=FakeEvaluator(), task=TASK, choices=load_choices(None),
                        iters=1, log=lambda _m: None)
    # the slot of iteration 1 was held by this worker's RUNNING trial: no other worker would design it
    assert seen == [([(1, "llm", "running")], None)]
    assert result.evaluated == 1 and load_candidates(study)[0].status == "ok"


class ThirdWorker:
    """A worker in a thread of its own (its own study connection and lock handle) that claims under the lock.

    ``claim`` returns whether the claim was made while the caller waits (the bound only keeps the old,
    lock-holding code from hanging the test: there the claim can happen only after the caller returns).
    """

    def __init__(self, url: str, name: str, designer: str):
        self.url, self.name, self.designer = url, name, designer
        self.claimed = threading.Event()
        self.saw: list[tuple] = []  # the study as this worker read it under the lock
        self.thread: threading.Thread | None = None

    def claim(self, spec: dict, iteration: int) -> bool:
        self.thread = threading.Thread(target=self._run, args=(spec, iteration), daemon=True)
        self.thread.start()
        return self.claimed.wait(timeout=30)

    def _run(self, spec: dict, iteration: int) -> None:
        study = open_study(self.name, self.url, create=False)
        with claim_lock(study):
            self.saw = [(c.number, c.iteration, c.status, c.spec) for c in load_candidates(study)]
            _other_worker_takes(study, spec, iteration, self.designer)
        self.claimed.set()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=30)


class FinishesOthers(FakeEvaluator):
    """While this worker trains, the other workers finish their candidates."""

    def __init__(self, study):
        super().__init__()
        self.study = study

    def evaluate(self, spec, *, name=None, out_dir=None, on_epoch=None):
        self.finish_others()
        return super().evaluate(spec, name=name, out_dir=out_dir, on_epoch=on_epoch)

    def finish_others(self, _message: str = "waiting for") -> None:
        """Also the loop's log hook: a worker waiting for the others' trials sees them finish."""
        if not _message.startswith("waiting for"):
            return
        for trial in self.study.get_trials():
            if (trial.user_attrs.get("record") or {}).get("owner", {}).get("host") == "another-machine":
                _other_worker_finishes(self.study, trial.number)


def test_another_worker_claims_while_the_llm_re_design_is_in_flight(tmp_path, llm_server):  # noqa: F811
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = open_study("llm", url)
    third = ThirdWorker(url, "llm", "llm")
    first, again, theirs = spec_with(16), spec_with(32), spec_with(64)
    in_flight: list[bool] = []

    def during_the_call(_body):  # in the server, while the designer waits for its answer
        if not in_flight and third.thread is None and len(llm_server.requests) == 1:
            in_flight.append(False)  # the first design: another worker takes the same spec meanwhile
            _other_worker_takes(open_study("llm", url, create=False), first, 2, "llm")
        elif third.thread is None:  # the re-design: a third worker claims iteration 3 now
            in_flight.append(third.claim(theirs, 3))

    llm_server.on_request = during_the_call
    llm_server.reply(json.dumps(first))
    llm_server.reply(json.dumps(again))
    designer = LLMDesigner(base_url=llm_server.base_url, model="fake", timeout=120.0, seed=0)
    evaluator = FinishesOthers(study)
    result = run_search(study, designer=designer, evaluator=evaluator, task=TASK, choices=load_choices(None),
                        iters=3, log=evaluator.finish_others, poll=0.05)
    third.join()
    # the third worker got the claim lock during the re-design's request, and saw this worker's slot still held
    assert in_flight == [False, True]
    assert [(n, i, status, spec) for n, i, status, spec in third.saw] == [(0, 1, "running", None),
                                                                          (1, 2, "running", first)]
    candidates = load_candidates(study)
    assert [(c.number, c.iteration, c.status) for c in candidates] == [(0, 1, "ok"), (1, 2, "ok"), (2, 3, "ok")]
    assert [spec_key(c.spec) for c in candidates] == [spec_key(s) for s in (again, first, theirs)]
    assert [spec_key(s) for s in evaluator.calls] == [spec_key(again)]  # nothing trained twice
    assert len(llm_server.requests) == 2 and result.redesigns == 1 and result.evaluated == 3


class TakenDuringTheRedesign(Collides):
    """The first call collides (as above); while the re-design runs, a third worker takes its answer too."""

    def __init__(self, study, script, third: ThirdWorker):
        super().__init__(study, script)
        self.third = third
        self.in_flight: list[bool] = []

    def propose(self, context, k=1):
        if self.other is not None and self.third.thread is None:
            self.in_flight.append(self.third.claim(self.script[0], 3))
        return super().propose(context, k)


def test_a_re_design_taken_by_a_third_worker_meanwhile_is_checked_and_designed_again(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = open_study("again", url)
    third = ThirdWorker(url, "again", "scripted")
    designer = TakenDuringTheRedesign(study, [spec_with(16), spec_with(32), spec_with(64)], third)
    evaluator = FinishesOthers(study)
    result = run_search(study, designer=designer, evaluator=evaluator, task=TASK, choices=load_choices(None),
                        iters=3, log=evaluator.finish_others, poll=0.05)
    third.join()
    assert designer.in_flight == [True]  # the claim lock was free while the re-design ran
    candidates = load_candidates(study)
    assert [(c.number, c.iteration, c.status) for c in candidates] == [(0, 1, "ok"), (1, 2, "ok"), (2, 3, "ok")]
    assert [c.spec for c in candidates] == [spec_with(64), spec_with(16), spec_with(32)]
    assert evaluator.calls == [spec_with(64)]  # the re-design's answer was checked again under the lock
    # the second re-design was shown both other workers' specs as pending
    assert [c.spec for c in designer.contexts[2].pending if c.spec] == [spec_with(16), spec_with(32)]
    assert study.get_trials()[0].user_attrs["record"]["redesigns"] == 2 and result.redesigns == 2

"""Workers that design at the same moment: the later one designs again instead of recording a duplicate.

Another worker is simulated inside the designer call (it takes the very spec this worker is about to propose,
exactly what happens when two workers design from the same history), so the collision is certain, not a
matter of timing. The LLM designer claims its slot before it calls the endpoint (checked from inside a
real HTTP chat-completions server while the request is in flight).
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from flnas.designers.llm import LLMDesigner
from flnas.space import load_choices, spec_key
from flnas.study.history import load_candidates, open_slot
from flnas.study.loop import run_search
from flnas.study.recording import record_trial
from flnas.study.storage import open_study
from llm_server import llm_server  # noqa: F401  (fixture)
from test_designers import TASK
from test_study_loop import FakeEvaluator, Scripted, spec_with


def _other_worker_takes(study, spec: dict, iteration: int) -> int:
    """Another worker (on another machine, alive) claims ``iteration`` and assigns ``spec`` to it."""
    trial = study.ask()
    attrs = {"kind": "search", "iteration": iteration, "designer": "scripted", "status": "running", "spec": spec,
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

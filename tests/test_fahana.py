"""FaHaNa's REINFORCE designer: valid proposals, the hardware penalty, learning, and resume by replay."""

from __future__ import annotations

import numpy as np
import pytest

from flnas.designers.base import DesignContext
from flnas.designers.fahana import FaHaNaDesigner, Policy, _decisions
from flnas.designers.registry import create_designer
from flnas.records import Candidate, TaskInfo
from flnas.space import default_choices, validate_spec

TASK = TaskInfo("synthetic", [f"c{i}" for i in range(8)], {"sex": ["male", "female"]}, 32, "cpu")


def context(history, iteration, choices=None):
    return DesignContext(
        history=list(history),
        best=None,
        choices=choices or default_choices(),
        task=TASK,
        iteration=iteration,
        rng=np.random.default_rng(iteration),
    )


def candidate(number, spec, acc, unfairness=0.0, params=1000, status="ok"):
    metrics = {"params": params, "val": {"accuracy": acc, "balanced_accuracy": acc, "unfairness": unfairness}}
    return Candidate(
        number=number, iteration=number, designer="fahana-rl", spec=spec, status=status, metrics=metrics
    )


def test_registered_and_proposals_are_valid_and_new():
    designer = create_designer("fahana-rl", max_layers=4)
    assert isinstance(designer, FaHaNaDesigner)
    choices = default_choices()
    history = []
    for it in range(1, 6):
        [proposal] = designer.propose(context(history, it), 1)
        assert proposal.spec is not None, proposal.error
        assert validate_spec(proposal.spec, choices, image_size=32, num_classes=8).ok
        assert proposal.spec not in [c.spec for c in history]
        assert _decisions(proposal.spec)["n_conv"] <= 4  # the controller can replay what it made
        history.append(candidate(it, proposal.spec, 0.5))


def test_reward_is_accuracy_minus_lambda_unfairness_with_a_hardware_penalty():
    designer = FaHaNaDesigner(lam=2.0, penalty=-1.0, max_params=5000)
    spec = {"layers": [], "head": {}}
    assert designer.reward(candidate(1, spec, 0.7, 0.1)) == pytest.approx(0.5)
    assert designer.reward(candidate(2, spec, 0.7, None)) == pytest.approx(0.7 - 2.0)  # undefined = worst
    assert designer.reward(candidate(3, spec, 0.9, 0.0, params=6000)) == -1.0  # over the params budget
    assert designer.reward(candidate(4, spec, 0.9, status="failed")) == -1.0


def test_policy_gradient_moves_probability_toward_rewarded_actions():
    policy = Policy()
    p = policy.probs("d", 3)
    policy.update([("d", 2, p)], advantage=1.0, lr=1.0)
    assert policy.probs("d", 3)[2] > 1 / 3
    policy.update([("d", 0, policy.probs("d", 3))], advantage=-1.0, lr=1.0)
    assert policy.probs("d", 3)[0] < 1 / 3
    masked = policy.probs("d", 3, np.array([True, False, True]))
    assert masked[1] == 0 and masked.sum() == pytest.approx(1.0)


def test_policy_learns_a_synthetic_reward_and_resumes_from_the_study():
    """Reward 0.9 when the first layer is a sepconv, 0.1 otherwise: the controller should learn it."""
    designer = FaHaNaDesigner(max_layers=3, lr=0.5)
    history: list[Candidate] = []
    for it in range(1, 16):
        [proposal] = designer.propose(context(history, it), 1)
        acc = 0.9 if proposal.spec["layers"][0]["type"] == "sepconv" else 0.1
        c = candidate(it, proposal.spec, acc)
        history.append(c)
        designer.observe(c)
    learned = designer.probability("type0", "sepconv")
    assert learned > 0.75
    assert np.mean([c.spec["layers"][0]["type"] == "sepconv" for c in history[-5:]]) >= 0.6

    resumed = FaHaNaDesigner(max_layers=3, lr=0.5)  # a new process: the policy is rebuilt from the history
    resumed.propose(context(history, 16), 1)
    assert len(resumed.rewards) >= len(history)
    assert resumed.probability("type0", "sepconv") > 0.75


def test_over_budget_draws_are_penalised_and_never_proposed():
    choices = default_choices().model_copy(update={"max_params": 20_000})
    designer = FaHaNaDesigner(max_layers=4)
    [proposal] = designer.propose(context([], 1, choices), 1)
    assert proposal.spec is not None
    result = validate_spec(proposal.spec, choices, image_size=32, num_classes=8)
    assert result.ok

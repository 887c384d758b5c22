"""FaHaNa's method as a designer: a REINFORCE controller over the same Choices as the LLM.

FaHaNa (Sheng et al., 2022) searches fair and hardware-aware networks with reinforcement learning: a
controller samples an architecture decision by decision, the network is trained, and the controller is
rewarded for accuracy and fairness, with a hardware constraint that turns an over-budget network into a
penalty. Its code is not published, so flnas implements the method itself: independent categorical logits
per decision (number of conv layers; per layer type, channels, kernel, stride, norm, activation, residual
and an optional pool or dropout after it; head pooling, width, dropout and activation), reward
``val accuracy - lam * val unfairness`` (the accuracy is the study's accuracy of record, from the design
context; a degenerate or failed candidate earns the penalty), a moving-average baseline, and a
policy-gradient step per observed candidate. Shapes that cannot work at the input size are masked out
while sampling; a spec over the params/FLOPs budget is a penalty and is re-drawn. The policy is rebuilt
from the study on resume (its own earlier candidates are replayed), so a killed search continues with the
same controller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from flnas.designers.base import DesignContext, Designer, Proposal
from flnas.designers.registry import register_designer
from flnas.records import Candidate, accuracy_key, unfairness_value

CONV = ("conv", "sepconv")


class _Mismatch(Exception):
    """A spec that this controller could not have produced (skipped when replaying the history)."""


def _dropout_values(low: float, high: float) -> list[float]:
    return sorted({round(float(v), 2) for v in np.linspace(low, high, 4)})


class Policy:
    """Independent categorical distributions, one per named decision, with masked sampling."""

    def __init__(self) -> None:
        self.logits: dict[str, np.ndarray] = {}

    def probs(self, name: str, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        logits = self.logits.setdefault(name, np.zeros(n))
        if allowed is not None and not allowed.any():
            allowed = None
        z = np.where(allowed, logits, -np.inf) if allowed is not None else logits
        e = np.exp(z - np.max(z))
        return e / e.sum()

    def update(self, steps: list[tuple[str, int, np.ndarray]], advantage: float, lr: float) -> None:
        """REINFORCE: logits += lr * advantage * grad log pi(a) = lr * advantage * (onehot(a) - p)."""
        for name, index, p in steps:
            grad = -p.copy()
            grad[index] += 1.0
            self.logits[name] = self.logits[name] + lr * advantage * grad


def _build(choices: Any, image_size: int, max_layers: int, pick: Callable[..., Any]) -> dict[str, Any]:
    """Walk the decisions in order; ``pick(name, options, allowed)`` returns one of ``options``."""
    conv_types = [t for t in choices.layer_types if t in CONV]
    extras = ["none"] + [t for t in ("pool", "dropout") if t in choices.layer_types]
    drop = _dropout_values(choices.dropout_min, choices.dropout_max)
    top = max(choices.min_layers, min(choices.max_layers, max_layers))
    n_conv = pick("n_conv", list(range(choices.min_layers, top + 1)), None)
    layers: list[dict[str, Any]] = []
    size = image_size
    for i in range(n_conv):
        layer: dict[str, Any] = {"type": pick(f"type{i}", conv_types, None)}
        layer["channels"] = pick(f"channels{i}", list(choices.channels), None)
        layer["kernel"] = pick(f"kernel{i}", list(choices.kernels), None)
        layer["stride"] = pick(
            f"stride{i}", list(choices.strides), [s == 1 or s <= size for s in choices.strides]
        )
        size = (size - 1) // layer["stride"] + 1
        layer["norm"] = pick(
            f"norm{i}", list(choices.norms), [n != "instance" or size > 1 for n in choices.norms]
        )
        layer["activation"] = pick(f"act{i}", list(choices.activations), None)
        layer["residual"] = pick(f"residual{i}", [False, True] if choices.residual else [False], None)
        layers.append(layer)
        room = len(layers) + (n_conv - i - 1) < choices.max_total_layers
        fits = any(k <= size for k in choices.pool_kernels)
        after = pick(f"after{i}", extras, [e == "none" or (room and (e != "pool" or fits)) for e in extras])
        if after == "pool":
            kernels = list(choices.pool_kernels)
            kernel = pick(f"pool_kernel{i}", kernels, [k <= size for k in kernels])
            layers.append(
                {
                    "type": "pool",
                    "mode": pick(f"pool_mode{i}", list(choices.pool_modes), None),
                    "kernel": kernel,
                }
            )
            size = max(1, size // kernel)
        elif after == "dropout":
            layers.append({"type": "dropout", "p": pick(f"dropout{i}", drop, None)})
    widths = [0] + (list(choices.head_hidden) if choices.max_head_layers > 0 else [])
    hidden = pick("head_hidden", widths, None)
    head = {
        "pool": pick("head_pool", list(choices.head_pools), None),
        "hidden": [hidden] if hidden else [],
        "dropout": pick("head_dropout", drop, None),
        "activation": "relu",
    }
    if hidden:
        head["activation"] = pick("head_act", list(choices.activations), None)
    return {"layers": layers, "head": head}


def _decisions(spec: dict[str, Any]) -> dict[str, Any]:
    """The decision values that produce ``spec`` (raises _Mismatch for a spec outside this controller)."""
    out: dict[str, Any] = {}
    slot = -1
    for layer in spec.get("layers") or []:
        kind = layer.get("type")
        if kind in CONV:
            slot += 1
            out.update(
                {
                    f"type{slot}": kind,
                    f"channels{slot}": layer.get("channels"),
                    f"kernel{slot}": layer.get("kernel", 3),
                    f"stride{slot}": layer.get("stride", 1),
                    f"norm{slot}": layer.get("norm", "batch"),
                    f"act{slot}": layer.get("activation", "relu"),
                    f"residual{slot}": bool(layer.get("residual", False)),
                    f"after{slot}": "none",
                }
            )
        elif slot >= 0 and out[f"after{slot}"] == "none" and kind in ("pool", "dropout"):
            out[f"after{slot}"] = kind
            if kind == "pool":
                out[f"pool_kernel{slot}"], out[f"pool_mode{slot}"] = (
                    layer.get("kernel", 2),
                    layer.get("mode", "max"),
                )
            else:
                out[f"dropout{slot}"] = layer.get("p")
        else:
            raise _Mismatch(kind)
    head = spec.get("head") or {}
    hidden = head.get("hidden") or []
    if len(hidden) > 1:
        raise _Mismatch("head")
    out.update(
        {
            "n_conv": slot + 1,
            "head_hidden": hidden[0] if hidden else 0,
            "head_pool": head.get("pool", "avg"),
            "head_dropout": head.get("dropout", 0.0),
            "head_act": head.get("activation", "relu"),
        }
    )
    return out


@register_designer("fahana-rl")
class FaHaNaDesigner(Designer):
    """REINFORCE over Choices with reward ``accuracy - lam * unfairness`` under a hardware constraint."""

    def __init__(
        self,
        *,
        lam: float = 1.0,
        lr: float = 0.5,
        baseline_decay: float = 0.9,
        penalty: float = -1.0,
        max_layers: int = 8,
        max_params: int | None = None,
        draws: int = 200,
    ) -> None:
        self.lam, self.lr, self.decay, self.penalty = lam, lr, baseline_decay, penalty
        self.max_layers, self.max_params, self.draws = max_layers, max_params, draws
        self.policy = Policy()
        self.baseline: float | None = None
        self.rewards: list[float] = []
        self._seen: set[int] = set()
        self._setting: tuple[Any, int] | None = None  # (choices, image_size) once known
        self._accuracy = "plain"  # the study's accuracy of record; set from the context in propose()

    # --- reward and learning -----------------------------------------------------------------------------

    def reward(self, candidate: Candidate) -> float:
        """FaHaNa's reward: val accuracy - lam * val unfairness; the penalty when not ok or over budget."""
        metrics = candidate.metrics or {}
        val = metrics.get("val") or {}
        key = accuracy_key(self._accuracy)
        if candidate.status != "ok" or val.get(key) is None:
            return self.penalty
        budget = self._budget()
        if budget is not None and (metrics.get("params") or 0) > budget:
            return self.penalty
        latency_budget = getattr(self._setting[0], "max_latency_s", None) if self._setting else None
        if latency_budget and (metrics.get("latency_s") or 0) > latency_budget:
            return self.penalty
        return float(val[key]) - self.lam * unfairness_value(val.get("unfairness"))

    def _budget(self) -> int | None:
        if self.max_params is not None:
            return self.max_params
        return getattr(self._setting[0], "max_params", None) if self._setting else None

    def learn(self, steps: list[tuple[str, int, np.ndarray]], reward: float) -> None:
        """One policy-gradient step with the moving-average baseline."""
        baseline = reward if self.baseline is None else self.baseline
        self.policy.update(steps, reward - baseline, self.lr)
        self.baseline = self.decay * baseline + (1 - self.decay) * reward
        self.rewards.append(reward)

    def observe(self, candidate: Candidate) -> None:
        if candidate.designer != self.name or candidate.number in self._seen or not candidate.spec:
            return
        self._seen.add(candidate.number)
        if candidate.status == "invalid":
            return  # rejected by the loop (e.g. a duplicate); never trained, nothing to learn
        steps = self._replay(candidate.spec)
        if steps is not None:
            self.learn(steps, self.reward(candidate))

    # --- sampling ------------------------------------------------------------------------------------------

    def _sample(self, rng: np.random.Generator) -> tuple[dict[str, Any], list[tuple[str, int, np.ndarray]]]:
        steps: list[tuple[str, int, np.ndarray]] = []

        def pick(name: str, options: list[Any], allowed: list[bool] | None) -> Any:
            mask = None if allowed is None else np.array(allowed, dtype=bool)
            p = self.policy.probs(name, len(options), mask)
            index = int(rng.choice(len(options), p=p))
            steps.append((name, index, p))
            return options[index]

        choices, image_size = self._setting  # type: ignore[misc]
        return _build(choices, image_size, self.max_layers, pick), steps

    def _replay(self, spec: dict[str, Any]) -> list[tuple[str, int, np.ndarray]] | None:
        """The steps that would have produced ``spec`` under the current policy (None if it could not)."""
        if self._setting is None:
            return None
        try:
            wanted = _decisions(spec)
        except _Mismatch:
            return None
        steps: list[tuple[str, int, np.ndarray]] = []

        def pick(name: str, options: list[Any], allowed: list[bool] | None) -> Any:
            value = wanted.get(name)
            if value not in options:
                raise _Mismatch(name)
            index = options.index(value)
            mask = None if allowed is None else np.array(allowed, dtype=bool)
            if mask is not None and not mask[index]:
                raise _Mismatch(name)
            steps.append((name, index, self.policy.probs(name, len(options), mask)))
            return value

        choices, image_size = self._setting
        try:
            _build(choices, image_size, self.max_layers, pick)
        except _Mismatch:
            return None
        return steps

    def propose(self, context: DesignContext, k: int = 1) -> list[Proposal]:
        from flnas.designers.common import avoid_keys, checked

        self._setting = (context.choices, context.task.image_size)
        self._accuracy = context.selection.accuracy
        for candidate in context.history:  # resume: learn from this designer's earlier candidates
            self.observe(candidate)
        avoid = avoid_keys(context)
        out: list[Proposal] = []
        for _ in range(k):
            penalised = 0
            for _draw in range(self.draws):
                spec, steps = self._sample(context.rng)
                got = checked(spec, context)
                if got is None:  # over the params/FLOPs budget or otherwise invalid: the hardware penalty
                    self.learn(steps, self.penalty)
                    penalised += 1
                    continue
                if got[1] in avoid:
                    continue
                avoid.add(got[1])
                record = {
                    "method": "fahana-rl",
                    "penalised_draws": penalised,
                    "baseline": self.baseline,
                    "lam": self.lam,
                    "reward_history": self.rewards[-10:],
                }
                out.append(Proposal(spec=got[0], record=record))
                break
            else:
                out.append(Proposal(spec=None, error=f"no new valid architecture in {self.draws} draws"))
        return out

    def probability(self, name: str, value: Any) -> float:
        """The current (unmasked) probability that decision ``name`` takes ``value`` (for tests and logs)."""
        if self._setting is None:
            raise ValueError("the policy is built on the first propose()")
        options: list[Any] = []

        def pick(n: str, opts: list[Any], allowed: list[bool] | None) -> Any:
            if n == name:
                options.extend(opts)
                raise _Mismatch(n)
            return opts[0]

        try:
            _build(self._setting[0], self._setting[1], self.max_layers, pick)
        except _Mismatch:
            pass
        if value not in options:
            raise ValueError(f"{value!r} is not an option of decision {name!r}")
        return float(self.policy.probs(name, len(options))[options.index(value)])

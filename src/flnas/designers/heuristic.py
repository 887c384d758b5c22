"""An offline designer that edits the best-so-far the way the paper's prompt asks an LLM to.

The prompt's priorities (Algorithm 2): raise the weakest demographic group's accuracy (fairness), then
accuracy, then make the network smaller and faster. The heuristic reads the best candidate's validation
metrics and picks a *mode*:

- ``fairness`` when the weakest group's val accuracy lags the overall val accuracy by more than
  ``fair_gap`` (default 0.05): normalise and regularise (group/batch/layer norm, more dropout), then widen
  or add a conv layer;
- ``accuracy``: deepen, widen, larger kernels, keep more resolution (a stride-2 layer back to 1), other
  activations, a wider head;
- ``shrink``: downsample earlier (a stride-1 layer to 2), remove a conv layer, fewer channels, separable
  convolutions, smaller kernels, a smaller head.

The modes form a ladder in priority order (fairness only while the gap is there). The heuristic starts at
the top and steps down one mode each time ``plateau`` (default 2) ok candidates in a row have not become
the new best, wrapping around: when raising the weakest group stops paying off it tries accuracy, then
shrinking, then fairness again.

It explores rather than polishing one edit: within a mode the first edit tried rotates with every
candidate that did not become the best (so depth, width, stride and normalisation all get their turn,
not dropout again and again), and after a whole ladder without a new best it *restarts* from another
member of the Pareto front (val accuracy of record, unfairness, params), a different one each time, before
the best. "Best", the ranking and the front all use the study's rule, tolerance and accuracy of record
(``context.selection``); a degenerate candidate is never a base.

Each mode is an ordered list of edits; the first edit giving a valid spec that was never evaluated wins,
then the other modes, then the next bases, then a random draw. It is deterministic given the study (and
the seed, for that last fallback), and never repeats a spec. The first candidate of a study is
``flnas.space.example_spec()`` or the ``init_spec`` given (``--init-spec FILE``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flnas.designers.base import DesignContext, Designer, Proposal
from flnas.designers.common import avoid_keys, checked, random_candidates
from flnas.designers.registry import register_designer
from flnas.records import Candidate, is_evaluated

Spec = dict[str, Any]
Edit = Callable[[Spec, Any], Iterator[Spec]]
CONV = ("conv", "sepconv")


def _convs(spec: Spec) -> list[int]:
    return [i for i, layer in enumerate(spec["layers"]) if layer.get("type") in CONV]


def _step(values: list[Any], current: Any, up: bool) -> Any | None:
    """The next larger (or smaller) allowed value than ``current``, or None."""
    ordered = sorted(set(values))
    nxt = [v for v in ordered if v > current] if up else [v for v in reversed(ordered) if v < current]
    return nxt[0] if nxt else None


def _clone(spec: Spec) -> Spec:
    return copy.deepcopy(spec)


# ---- edits: each yields variants of the spec, most promising first ---------------------------------
def add_dropout(spec: Spec, ch: Any) -> Iterator[Spec]:
    """Regularise: raise the head's dropout, then add (or raise) a dropout layer after the features."""
    head_p = float(spec["head"].get("dropout", 0.0))
    if head_p + 0.1 <= ch.dropout_max + 1e-9:
        new = _clone(spec)
        new["head"]["dropout"] = round(head_p + 0.1, 2)
        yield new
    if "dropout" in ch.layer_types:
        drops = [i for i, layer in enumerate(spec["layers"]) if layer["type"] == "dropout"]
        new = _clone(spec)
        if drops:
            p = float(new["layers"][drops[-1]]["p"])
            if p + 0.1 > ch.dropout_max + 1e-9:
                return
            new["layers"][drops[-1]]["p"] = round(p + 0.1, 2)
        else:
            p = round(min(max(0.2, ch.dropout_min), ch.dropout_max), 2)
            new["layers"].append({"type": "dropout", "p": p})
        yield new


def change_norm(spec: Spec, ch: Any) -> Iterator[Spec]:
    """Normalise differently: group norm (batch-size independent), then batch norm, on every conv layer."""
    for norm in ("group", "batch", "layer"):
        if norm not in ch.norms:
            continue
        new = _clone(spec)
        for i in _convs(new):
            new["layers"][i]["norm"] = norm
        if new != spec:
            yield new


def widen(spec: Spec, ch: Any) -> Iterator[Spec]:
    """More channels, last conv layer first."""
    for i in reversed(_convs(spec)):
        wider = _step(ch.channels, spec["layers"][i]["channels"], up=True)
        if wider is not None:
            new = _clone(spec)
            new["layers"][i]["channels"] = wider
            yield new


def add_conv(spec: Spec, ch: Any) -> Iterator[Spec]:
    """Deepen: a 3x3 conv (residual where allowed) after each conv layer, deepest position first."""
    if len(_convs(spec)) >= ch.max_layers or len(spec["layers"]) >= ch.max_total_layers:
        return
    kind = "conv" if "conv" in ch.layer_types else "sepconv"
    kernel = 3 if 3 in ch.kernels else sorted(ch.kernels)[len(ch.kernels) // 2]
    for i in reversed(_convs(spec)):
        base = spec["layers"][i]
        layer = {
            "type": kind,
            "channels": base["channels"],
            "kernel": kernel,
            "stride": 1,
            "norm": base.get("norm", "batch"),
            "activation": base.get("activation", "relu"),
            "residual": bool(ch.residual),
        }
        new = _clone(spec)
        new["layers"].insert(i + 1, layer)
        yield new


def larger_kernel(spec: Spec, ch: Any) -> Iterator[Spec]:
    for i in _convs(spec):
        k = _step(ch.kernels, spec["layers"][i].get("kernel", 3), up=True)
        if k is not None:
            new = _clone(spec)
            new["layers"][i]["kernel"] = k
            yield new


def widen_head(spec: Spec, ch: Any) -> Iterator[Spec]:
    hidden = list(spec["head"].get("hidden", []))
    if hidden:
        wider = _step(ch.head_hidden, hidden[-1], up=True)
        if wider is not None:
            new = _clone(spec)
            new["head"]["hidden"] = hidden[:-1] + [wider]
            yield new
    if len(hidden) < ch.max_head_layers and ch.head_hidden:
        new = _clone(spec)
        new["head"]["hidden"] = hidden + [sorted(ch.head_hidden)[len(ch.head_hidden) // 2]]
        yield new


def remove_conv(spec: Spec, ch: Any) -> Iterator[Spec]:
    """Shallower: drop one conv layer, the deepest stride-1 one first."""
    convs = _convs(spec)
    if len(convs) <= ch.min_layers:
        return
    order = sorted(convs, key=lambda i: (spec["layers"][i].get("stride", 1) != 1, -i))
    for i in order:
        new = _clone(spec)
        del new["layers"][i]
        yield new


def narrow(spec: Spec, ch: Any) -> Iterator[Spec]:
    """Fewer channels, widest layer first."""
    for i in sorted(_convs(spec), key=lambda i: -spec["layers"][i]["channels"]):
        smaller = _step(ch.channels, spec["layers"][i]["channels"], up=False)
        if smaller is not None:
            new = _clone(spec)
            new["layers"][i]["channels"] = smaller
            yield new


def separable(spec: Spec, ch: Any) -> Iterator[Spec]:
    """Replace a standard conv by a depthwise-separable one (far fewer params), deepest first."""
    if "sepconv" not in ch.layer_types:
        return
    for i in reversed(_convs(spec)):
        if spec["layers"][i]["type"] == "conv" and i != 0:
            new = _clone(spec)
            new["layers"][i]["type"] = "sepconv"
            yield new


def more_stride(spec: Spec, ch: Any) -> Iterator[Spec]:
    """Downsample earlier: a stride-1 conv layer gets the next larger stride, earliest first (cheaper)."""
    for i in _convs(spec):
        stride = _step(ch.strides, spec["layers"][i].get("stride", 1), up=True)
        if stride is not None:
            new = _clone(spec)
            new["layers"][i]["stride"] = stride
            new["layers"][i]["residual"] = False if stride != 1 else new["layers"][i].get("residual", False)
            yield new


def less_stride(spec: Spec, ch: Any) -> Iterator[Spec]:
    """Keep more resolution: a strided conv layer gets the next smaller stride, deepest first."""
    for i in reversed(_convs(spec)):
        stride = _step(ch.strides, spec["layers"][i].get("stride", 1), up=False)
        if stride is not None:
            new = _clone(spec)
            new["layers"][i]["stride"] = stride
            yield new


def change_activation(spec: Spec, ch: Any) -> Iterator[Spec]:
    """Another activation on every conv layer (silu, gelu, relu, hardswish: the smooth ones first)."""
    for activation in ("silu", "gelu", "relu", "hardswish"):
        if activation not in ch.activations:
            continue
        new = _clone(spec)
        for i in _convs(new):
            new["layers"][i]["activation"] = activation
        if new != spec:
            yield new


def smaller_kernel(spec: Spec, ch: Any) -> Iterator[Spec]:
    for i in reversed(_convs(spec)):
        k = _step(ch.kernels, spec["layers"][i].get("kernel", 3), up=False)
        if k is not None:
            new = _clone(spec)
            new["layers"][i]["kernel"] = k
            yield new


def shrink_head(spec: Spec, ch: Any) -> Iterator[Spec]:
    hidden = list(spec["head"].get("hidden", []))
    if hidden:
        new = _clone(spec)
        new["head"]["hidden"] = hidden[:-1]
        yield new


MODES: dict[str, list[Edit]] = {
    "fairness": [change_norm, add_dropout, widen, add_conv],
    "accuracy": [add_conv, widen, larger_kernel, less_stride, change_activation, widen_head],
    "shrink": [more_stride, remove_conv, narrow, separable, smaller_kernel, shrink_head],
}


def weakest_group_gap(candidate: Candidate) -> float:
    """Overall val accuracy minus the lowest group's val accuracy (0 when groups are unknown)."""
    val = (candidate.metrics or {}).get("val") or {}
    groups = [g.get("accuracy") for g in (val.get("groups") or {}).values() if g.get("accuracy") is not None]
    if not groups or val.get("accuracy") is None:
        return 0.0
    return float(val["accuracy"]) - float(min(groups))


@register_designer("heuristic")
class HeuristicDesigner(Designer):
    """Edits the best-so-far by the prompt's priorities: weakest group, then accuracy, then size."""

    def __init__(
        self, *, init_spec: str | Path | dict | None = None, fair_gap: float = 0.05, plateau: int = 2
    ) -> None:
        self.init_spec = _load_init(init_spec)
        self.fair_gap = fair_gap
        self.plateau = plateau

    def _ladder(self, context: DesignContext) -> list[str]:
        ladder = ["accuracy", "shrink"]
        if context.best is not None and weakest_group_gap(context.best) > self.fair_gap:
            ladder.insert(0, "fairness")
        return ladder

    @staticmethod
    def stalled(context: DesignContext) -> int:
        """Candidates evaluated since the best so far (ok or degenerate: neither became the best)."""
        best = context.best.number if context.best is not None else -1
        return sum(1 for c in context.history if is_evaluated(c) and c.status != "failed" and c.number > best)

    def mode(self, context: DesignContext) -> str:
        """Which priority the next edit serves (see the module docstring)."""
        ladder = self._ladder(context)
        return ladder[(self.stalled(context) // max(1, self.plateau)) % len(ladder)]

    def restart(self, context: DesignContext) -> Candidate | None:
        """After a whole ladder without a new best: another Pareto-front member to edit (one per cycle)."""
        from flnas.records import pareto_front

        cycle = self.stalled(context) // (max(1, self.plateau) * len(self._ladder(context)))
        if cycle < 1:
            return None
        best = context.best.number if context.best is not None else -1
        front = pareto_front(context.history, accuracy=context.selection.accuracy)
        others = [c for c in front if c.number != best and c.spec is not None]
        return others[(cycle - 1) % len(others)] if others else None

    def propose(self, context: DesignContext, k: int = 1) -> list[Proposal]:
        avoid = avoid_keys(context)
        found = self._candidates(context, avoid)
        out: list[Proposal] = []
        for _ in range(k):
            got = next(found, None)
            if got is None:
                out.append(Proposal(spec=None, error="the heuristic found no new valid architecture"))
                continue
            (spec, key), record = got
            avoid.add(key)
            out.append(Proposal(spec=spec, record={"method": "heuristic", **record}))
        return out

    def _candidates(self, context: DesignContext, avoid: set[str]):
        from flnas.records import rank
        from flnas.space import example_spec

        init = self.init_spec if self.init_spec is not None else example_spec().model_dump(mode="json")
        init_ok = checked(init, context)
        ranked = [c for c in rank(context.history, **context.selection.as_kwargs()) if c.spec is not None]
        if not ranked and init_ok is not None and init_ok[1] not in avoid:
            yield init_ok, {"edit": "init"}
        mode = self.mode(context)
        order = [mode] + [m for m in MODES if m != mode]
        best = [context.best] if context.best is not None and context.best.spec is not None else []
        restart = self.restart(context)
        first = [restart] if restart is not None else []
        bases = first + best + [c for c in ranked if c not in best and c not in first][: 3 - len(best)]
        turn = self.stalled(context)
        if not bases and init_ok is not None:
            bases = [Candidate(number=-1, iteration=0, designer="init", spec=init_ok[0], status="ok")]
        for base in bases:
            for m in order:
                edits = MODES[m]
                if m == mode:  # the edit tried first rotates with every miss (see the module docstring)
                    r = turn % len(edits)
                    edits = edits[r:] + edits[:r]
                for edit in edits:
                    for variant in edit(_clone(base.spec), context.choices):
                        got = checked(variant, context)
                        if got is not None and got[1] not in avoid:
                            record = {"mode": m, "edit": edit.__name__, "base": base.number}
                            yield got, ({**record, "restart": True} if base is restart else record)
        for got in random_candidates(context, avoid):
            yield got, {"edit": "random (no edit left)"}


def _load_init(init: str | Path | dict | None) -> dict | None:
    """The seed architecture: a dict, or a JSON file's content (None: the space's example)."""
    if init is None or isinstance(init, dict):
        return init
    from flnas.space import read_spec_file

    return read_spec_file(init, what="--init-spec file")

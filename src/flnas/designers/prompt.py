"""PromptGenerator: Algorithm 2 of the paper, with its text in a replaceable template file.

The prompt is PromptApp ("You are an expert in the field of neural architecture search.") + PromptTask
(follow the Template: the ArchSpec JSON Schema narrowed by the study's Choices, and an example) +
PromptConst (the task, the best-so-far architecture and its evaluation in the paper's optMetrics form, the
target Env and its limits, the metric priorities, and the Choices). flnas adds switchable extras the paper
does not have: the already-tried specs, the top-k and the most recent candidates with their metrics, and the
invalid or failed attempts to avoid. To keep the prompt short on long searches every earlier architecture
appears once: the tried list gives each a short id (``#<trial number>``; the best-so-far is shown only in
full above), and the other lists refer to those ids.

The text lives in ``prompt_template.txt`` (``string.Template``: ``${name}`` placeholders, ``$$`` for a
literal dollar). A ``[system]`` line starts the system message and a ``[user]`` line the user message; a
file without these markers is sent as one user message. ``--prompt-template FILE`` replaces it.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

from flnas.designers.base import DesignContext
from flnas.errors import FlnasError
from flnas.records import Candidate

__all__ = ["DEFAULT_TEMPLATE", "PLACEHOLDERS", "REQUIRED_PLACEHOLDERS", "PromptGenerator"]

DEFAULT_TEMPLATE = Path(__file__).with_name("prompt_template.txt")

PLACEHOLDERS: dict[str, str] = {
    "schema": "the Template: the architecture's JSON Schema narrowed by the Choices (choices_schema())",
    "example": "an example architecture as JSON (example_spec())",
    "dataset": "the dataset name, e.g. ISIC 2019",
    "image_size": "the input image side in pixels",
    "num_classes": "the number of classes",
    "classes": "the class names, comma-separated",
    "groups": "the dataset's sensitive groups per attribute, e.g. 'sex: male, female; age: young, middle, old'",
    "best": "the best-so-far architecture as JSON and its optMetrics line (or: there is none yet)",
    "env": "the target device (Env), e.g. Raspberry Pi 4",
    "limits": "the Env's budgets from Choices (max params, max latency), as a sentence",
    "choices": "the Choices (allowed ranges and budgets) as JSON",
    "top_k": "extra: the next-best candidates (by id) with their metrics (empty when switched off)",
    "recent": "extra: the most recent candidates (by id) with their metrics or failure (empty when off)",
    "failed": "extra: invalid or failed attempts (by id) to avoid, with reasons (empty when switched off)",
    "tried": "extra: every already-tried spec once, compact, with its id; not to repeat (empty when off)",
    "iteration": "the 1-based iteration being designed",
}
REQUIRED_PLACEHOLDERS = ("schema", "best", "choices")

_SECTION = re.compile(r"^\[(system|user)\][ \t]*$", re.MULTILINE)
_MAX_LISTED = 30  # cap on failed/tried entries so the prompt stays bounded on long searches


def _compact(spec: dict[str, Any]) -> str:
    return json.dumps(spec, separators=(",", ":"), sort_keys=False)


def _pretty(spec: dict[str, Any]) -> str:
    """One layer per line: readable for a person, short for an LLM."""
    if not isinstance(spec.get("layers"), list):
        return json.dumps(spec, indent=2)
    layers = ",\n".join(f"    {json.dumps(layer)}" for layer in spec["layers"])
    rest = "".join(f',\n  "{k}": {json.dumps(v)}' for k, v in spec.items() if k != "layers")
    return f'{{\n  "layers": [\n{layers}\n  ]{rest}\n}}'


def _as_dict(obj: Any) -> dict[str, Any]:
    """Choices / ArchSpec as plain JSON data (pydantic models or dicts)."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return dict(obj)


def opt_metrics(candidate: Candidate, accuracy: str = "plain") -> str:
    """The paper's optMetrics line for a candidate (its evaluation), or its status and reason.

    With the balanced accuracy of record (``accuracy="balanced"``) the line ends with the validation
    balanced accuracy, the number the study ranks by; the paper's preset ("plain") is the paper's line.
    """
    if candidate.status == "ok" and candidate.metrics:
        from flnas.designers.optmetrics import format_opt_metrics

        line = format_opt_metrics(candidate.metrics)
        if accuracy == "balanced":
            value = ((candidate.metrics.get("val") or {}).get("balanced_accuracy"))
            shown = "n/a" if value is None else f"{100 * float(value):.2f}%"
            line += f" Valid Balanced Acc (the accuracy this search ranks by): {shown}."
        return line
    reason = f": {candidate.reason}" if candidate.reason else ""
    return f"{candidate.status}{reason}"


def _rank(candidates: list[Candidate], context: DesignContext) -> list[Candidate]:
    """Best first, by the study's selection rule, tolerance and accuracy of record (from the context)."""
    from flnas.records import rank

    return rank(candidates, **context.selection.as_kwargs())


def _limits(choices: dict[str, Any]) -> str:
    """The Env's budgets (any ``max_*`` field about params, latency, memory or FLOPs) as one sentence."""
    found: dict[str, Any] = {}
    for key, value in choices.items():
        if isinstance(value, dict) and "budget" in key:
            found.update({k: v for k, v in value.items() if v is not None})
        elif key.startswith("max_") and value is not None:
            found[key] = value
    parts = []
    for key, value in found.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if "param" in key:
            parts.append(f"at most {int(value):,} parameters")
        elif "latency" in key:
            unit = "milliseconds" if key.endswith("_ms") else "seconds"
            parts.append(f"a latency of at most {value:g} {unit} at batch size 2")
        elif "memory" in key or key.endswith("_mb"):
            parts.append(f"at most {value:g} MB of peak memory")
        elif "flops" in key:
            parts.append(f"at most {int(value):,} FLOPs")
    if not parts:
        return "No explicit budget is set; keep the model small and fast for this device."
    return "Its limits are: " + "; ".join(parts) + "."


class PromptGenerator:
    """Builds the prompt that asks an LLM for the next architecture (Algorithm 2).

    ``top_k``/``recent`` = 0 and ``show_failed``/``show_tried`` = False switch the extras off; with all
    four off the prompt is the paper's.
    """

    def __init__(
        self,
        template_path: str | Path | None = None,
        *,
        top_k: int = 3,
        recent: int = 3,
        show_failed: bool = True,
        show_tried: bool = True,
    ) -> None:
        self.template_path = Path(template_path) if template_path else DEFAULT_TEMPLATE
        self.top_k = top_k
        self.recent = recent
        self.show_failed = show_failed
        self.show_tried = show_tried
        self._system, self._user = self._load(self.template_path)

    def __repr__(self) -> str:
        return (
            f"PromptGenerator(template_path={str(self.template_path)!r}, top_k={self.top_k}, "
            f"recent={self.recent}, show_failed={self.show_failed}, show_tried={self.show_tried})"
        )

    @staticmethod
    def _load(path: Path) -> tuple[string.Template | None, string.Template]:
        """Read and check the template file: every placeholder known, the required ones present."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FlnasError(f"prompt template {path}: cannot be read ({exc.__class__.__name__})") from exc
        whole = string.Template(text)
        if not whole.is_valid():
            raise FlnasError(
                f"prompt template {path}: has a '$' that is not a ${{placeholder}}; "
                "write $$ for a literal dollar"
            )
        names = whole.get_identifiers()
        unknown = [n for n in names if n not in PLACEHOLDERS]
        if unknown:
            raise FlnasError(
                f"prompt template {path}: unknown placeholder ${{{unknown[0]}}}; "
                f"known placeholders are {', '.join(PLACEHOLDERS)}"
            )
        missing = [n for n in REQUIRED_PLACEHOLDERS if n not in names]
        if missing:
            raise FlnasError(
                f"prompt template {path}: placeholder ${{{missing[0]}}} is missing; "
                f"it must contain {', '.join('${' + n + '}' for n in REQUIRED_PLACEHOLDERS)}"
            )
        sections = dict.fromkeys(("system", "user"), "")
        marks = list(_SECTION.finditer(text))
        if not marks:
            sections["user"] = text
        for i, mark in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            sections[mark.group(1)] += text[mark.end() : end]
        system = string.Template(sections["system"].strip()) if sections["system"].strip() else None
        return system, string.Template(sections["user"].strip())

    # -- the parts -------------------------------------------------------------------------------------

    @staticmethod
    def schema(context: DesignContext) -> dict[str, Any]:
        """The Template narrowed by the context's Choices: shown in the prompt and sent for constrained decoding."""
        from flnas.space import choices_from_dict
        from flnas.space.schema import choices_schema

        choices = context.choices
        if not hasattr(choices, "model_dump"):
            choices = choices_from_dict(dict(choices))
        return choices_schema(choices)

    def values(self, context: DesignContext) -> dict[str, str]:
        """Every placeholder's text for this context (what the template is filled with)."""
        from flnas.space import example_spec

        task = context.task
        choices = _as_dict(context.choices)
        groups = "; ".join(f"{attr}: {', '.join(names)}" for attr, names in task.groups.items())
        return {
            "schema": json.dumps(self.schema(context)),
            "example": json.dumps(_as_dict(example_spec())),
            "dataset": task.dataset,
            "image_size": str(task.image_size),
            "num_classes": str(len(task.classes)),
            "classes": ", ".join(task.classes),
            "groups": groups or "not given",
            "best": self._best(context),
            "env": task.env,
            "limits": _limits(choices),
            "choices": json.dumps(choices),
            "top_k": self._top_k(context),
            "recent": self._recent(context),
            "failed": self._failed(context),
            "tried": self._tried(context),
            "iteration": str(context.iteration),
        }

    @staticmethod
    def _best(context: DesignContext) -> str:
        best = context.best
        if best is None or best.spec is None:
            state = "evaluated successfully" if context.history else "evaluated"
            return (
                f"No architecture has been {state} yet (this is iteration {context.iteration}), "
                "so there is no current best-performing DNN architecture: "
                "start from the example above and improve it for this task."
            )
        return (
            "The current best-performing DNN architecture is:\n```json\n"
            + _pretty(best.spec)
            + f"\n```\nand its evaluation is: {opt_metrics(best, context.selection.accuracy)}"
        )

    # -- the extras: every earlier architecture once, with an id the other lists refer to ------------

    def _ids(self, context: DesignContext) -> dict[str, str]:
        """compact spec JSON -> ``#<trial number>`` of the first candidate with it (oldest first)."""
        ids: dict[str, str] = {}
        for c in context.history:
            if c.spec is not None:
                ids.setdefault(_compact(c.spec), f"#{c.number}")
        return ids

    def _ref(self, c: Candidate, ids: dict[str, str]) -> str:
        """How a list names a candidate's architecture: its id when the tried list is shown, else its JSON."""
        if c.spec is None:
            return "no valid architecture"
        if self.show_tried:
            return ids.get(_compact(c.spec), _compact(c.spec))
        return _compact(c.spec)

    def _ranked(self, context: DesignContext) -> list[Candidate]:
        if self.top_k <= 0:
            return []
        ok = [c for c in context.history if c.status == "ok" and c.metrics and c.spec is not None]
        best_number = context.best.number if context.best else None
        return [c for c in _rank(ok, context) if c.number != best_number][: self.top_k]

    def _top_k(self, context: DesignContext) -> str:
        ranked = self._ranked(context)
        if not ranked:
            return ""
        ids = self._ids(context)
        lines = ["The next best architectures so far (best first) and their evaluations:"]
        acc = context.selection.accuracy
        lines += [f"{i}. {self._ref(c, ids)}: {opt_metrics(c, acc)}" for i, c in enumerate(ranked, 1)]
        return "\n".join(lines)

    def _recent(self, context: DesignContext) -> str:
        if self.recent <= 0 or not context.history:
            return ""
        ids = self._ids(context)
        recent = context.history[-self.recent :]
        shown = {c.number for c in self._ranked(context)}  # their evaluations are in the top-k list
        bad = {c.number for c in self._bad(context)}  # their reasons are in the list of attempts to avoid
        best_number = context.best.number if context.best else None
        lines = [f"The {len(recent)} most recent candidates (oldest first):"]
        for c in recent:
            head = f"- iteration {c.iteration} ({c.designer}): "
            if c.number == best_number:
                lines.append(head + "the current best architecture above")
            elif c.number in shown:
                lines.append(head + f"{self._ref(c, ids)}, its evaluation is in the list of next best")
            elif c.number in bad:
                lines.append(head + f"{self._ref(c, ids)}, {c.status} (why: in the attempts to avoid)")
            else:
                lines.append(head + f"{self._ref(c, ids)}, {opt_metrics(c, context.selection.accuracy)}")
        return "\n".join(lines)

    def _bad(self, context: DesignContext) -> list[Candidate]:
        if not self.show_failed:
            return []
        return [c for c in context.history if c.status in ("failed", "invalid", "degenerate")][-_MAX_LISTED:]

    def _failed(self, context: DesignContext) -> str:
        bad = self._bad(context)
        if not bad:
            return ""
        ids = self._ids(context)
        lines = ["Avoid these attempts, which were invalid, failed in training, or degenerate (one class):"]
        for c in bad:
            why = c.reason or "no reason recorded"
            lines.append(f"- iteration {c.iteration}: {self._ref(c, ids)}, {c.status}: {why}")
        return "\n".join(lines)

    def _tried(self, context: DesignContext) -> str:
        if not self.show_tried:
            return ""
        ids = self._ids(context)
        if not ids:
            return ""
        best = context.best
        best_key = _compact(best.spec) if best is not None and best.spec is not None else None
        # every id another list refers to is defined here; beyond those, the most recent _MAX_LISTED
        wanted = {_compact(c.spec) for c in [*self._ranked(context), *self._bad(context)] if c.spec is not None}
        wanted |= {_compact(c.spec) for c in context.history[-max(self.recent, 0) :] if c.spec is not None}
        keys = list(ids)
        keep = set(keys[-_MAX_LISTED:]) | wanted
        shown = [key for key in keys if key in keep]
        lines = ["These architectures were already tried (each with its id); do not repeat any of them:"]
        if len(shown) < len(keys):
            lines.append(f"({len(keys) - len(shown)} earlier ones not shown)")
        for key in shown:
            lines.append(f"{ids[key]}: " + ("the current best architecture above" if key == best_key else key))
        return "\n".join(lines)

    # -- the prompt ------------------------------------------------------------------------------------

    def messages(self, context: DesignContext) -> list[dict[str, str]]:
        """The prompt as chat messages: a system message (PromptApp) and a user message (the rest)."""
        values = self.values(context)
        out = []
        if self._system is not None:
            out.append({"role": "system", "content": _tidy(self._system.substitute(values))})
        out.append({"role": "user", "content": _tidy(self._user.substitute(values))})
        return out

    def build(self, context: DesignContext) -> str:
        """The whole prompt as one text: PromptApp + PromptTask + PromptConst (+ extras)."""
        return "\n\n".join(m["content"] for m in self.messages(context))


def _tidy(text: str) -> str:
    """Drop the blank lines that switched-off extras leave behind."""
    return re.sub(r"\n{3,}", "\n\n", text).strip()

"""The paper's optMetrics line: how a candidate's evaluation is shown to the LLM (Algorithm 2, PromptConst).

The form is the paper's example, field for field::

    Train Loss: 0.8746, Train Acc: 58.06%, Valid Loss: 0.6438, Valid Acc: 62.80%, Unfairness Score: 1.2983,
    EODD: 0.1229, EOPP1: 0.1224, EOPP2: 0.0105, Fairness Detail: [male: (63.23%, 95), female: (62.37%, 93),
    young: (25.99%, 23), middle_age: (59.30%, 104), old: (81.82%, 62)] Latency: 0.002153 seconds per image,
    Throughput: 464.38 images per second, Peak GPU Memory Usage: 232.88 MB.

Choices made where the paper is silent:
- The Unfairness Score is printed as defined in DESIGN.md: a fraction (mean absolute gap between group
  and overall accuracy, 0.0130 = 1.3 points), with four decimals like EODD. The paper's 1.2983 looks
  percentage-scaled; flnas keeps one scale everywhere so the prompt, the study and the report agree.
- Accuracies (overall and per group) are percentages with two decimals, as in the paper.
- Latency is the batch-2 latency divided by 2 (seconds per image), so it matches the paper's unit.
- On a CPU the memory field reads "Peak Memory Usage" (there is no GPU memory to speak of).
- The Fairness Detail lists every group of every sensitive attribute of the data, in order
  (``metrics["dataset"]["attributes"]``; metrics from before attributes were stored read as ISIC's five).
- A value that is undefined or was not measured reads ``n/a`` (never 0); a group with no records reads
  ``(n/a, 0)`` so the LLM sees that it is missing rather than perfect.
"""

from __future__ import annotations

import math
from typing import Any

from flnas.data.attributes import all_groups
from flnas.data.groups import DEFAULT_ATTRIBUTES, PAPER_GROUP_NAMES

NA = "n/a"


def _number(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NA
    return f"{float(value):.{digits}f}"


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NA
    return f"{100 * float(value):.2f}%"


def _part(metrics: dict[str, Any], key: str) -> dict[str, Any]:
    part = metrics.get(key)
    return part if isinstance(part, dict) else {}


def metrics_attributes(metrics: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The attributes an evaluator metrics object was measured over (``dataset.attributes``; ISIC's before)."""
    stored = (metrics.get("dataset") or {}).get("attributes") if isinstance(metrics, dict) else None
    if not isinstance(stored, dict) or not stored:
        return dict(DEFAULT_ATTRIBUTES)
    return {str(a): tuple(str(g) for g in groups) for a, groups in stored.items()}


def fairness_detail(split_metrics: dict[str, Any], attributes: dict[str, Any] | None = None) -> str:
    """``[male: (63.23%, 95), female: ..., old: (81.82%, 62)]``: every group of every attribute, in order.

    ``attributes`` defaults to ISIC's sex and age, whose groups keep the paper's names (``middle_age``).
    """
    attrs = DEFAULT_ATTRIBUTES if attributes is None else attributes
    paper = PAPER_GROUP_NAMES if attrs == DEFAULT_ATTRIBUTES else {}
    groups = split_metrics.get("groups") or {}
    items = []
    for group in all_groups(attrs):
        info = groups.get(group) or {}
        count = int(info.get("count") or 0)
        accuracy = _percent(info.get("accuracy")) if count else NA
        items.append(f"{paper.get(group, group)}: ({accuracy}, {count})")
    return "[" + ", ".join(items) + "]"


def format_opt_metrics(metrics: dict[str, Any], *, split: str = "val") -> str:
    """Render an evaluator metrics object (``flnas evaluate --json``) as the paper's optMetrics line.

    ``split`` picks the split whose loss, accuracy and fairness are shown as "Valid" (the search uses
    "val"; a report may show "test").
    """
    train = _part(metrics, "train")
    valid = _part(metrics, split)
    on_gpu = str(metrics.get("device") or "").startswith("cuda")
    memory_label = "Peak GPU Memory Usage" if on_gpu else "Peak Memory Usage"

    latency = metrics.get("latency_per_image_s")
    if latency is None and metrics.get("latency_s") is not None:
        batch = (metrics.get("config") or {}).get("latency_batch_size") or 2
        latency = float(metrics["latency_s"]) / batch
    latency_text = _number(latency, 6)
    throughput_text = _number(metrics.get("throughput"), 2)
    memory_text = _number(metrics.get("peak_memory_mb"), 2)

    return (
        f"Train Loss: {_number(train.get('loss'), 4)}, Train Acc: {_percent(train.get('accuracy'))}, "
        f"Valid Loss: {_number(valid.get('loss'), 4)}, Valid Acc: {_percent(valid.get('accuracy'))}, "
        f"Unfairness Score: {_number(valid.get('unfairness'), 4)}, EODD: {_number(valid.get('eodd'), 4)}, "
        f"EOPP1: {_number(valid.get('eopp1'), 4)}, EOPP2: {_number(valid.get('eopp2'), 4)}, "
        f"Fairness Detail: {fairness_detail(valid, metrics_attributes(metrics))} "
        f"Latency: {latency_text}{'' if latency_text == NA else ' seconds per image'}, "
        f"Throughput: {throughput_text}{'' if throughput_text == NA else ' images per second'}, "
        f"{memory_label}: {memory_text}{'' if memory_text == NA else ' MB'}."
    )

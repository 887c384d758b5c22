"""Degenerate candidates: networks whose validation predictions are essentially one class (or chance).

On imbalanced medical data (ISIC 2019: NV is about half of the images) a network that answers the
majority class for (nearly) every image has a high plain accuracy and, being constant, zero EODD/EOPP: it
looks accurate and fair and is useless. flnas records such a candidate (or baseline) with status
``degenerate`` and the reason; it is evaluated (it counts towards IterMax) but is never selected, never
shown to a designer as the best, shown to the LLM among the failures, and flagged in Table I.

The definition (read from the *validation* split, the only split selection may look at) is deliberately
independent of any one dataset: a candidate is degenerate when

1. one predicted class covers at least ``DOMINANT_SHARE`` (95%) of the validation images -- the model is a
   near-constant predictor, whatever the class balance; or
2. its validation balanced accuracy is at most ``(1 + CHANCE_MARGIN) / C`` (C = classes present in the
   split; ``CHANCE_MARGIN`` = 5%, so 13.1% for 8 classes, 52.5% for 2): it is no better than guessing
   even if its answers are spread over classes.

The counts behind rule 1 are the evaluator's ``class_counts`` of the split; metrics written before that
field existed are judged by rule 2 alone.
"""

from __future__ import annotations

import math
from typing import Any

from flnas.records import DEGENERATE

__all__ = ["CHANCE_MARGIN", "DEGENERATE", "DOMINANT_SHARE", "degenerate_reason", "is_degenerate"]
DOMINANT_SHARE = 0.95
CHANCE_MARGIN = 0.05


def degenerate_reason(metrics: dict[str, Any] | None, *, split: str = "val") -> str | None:
    """Why these metrics are those of a degenerate model (a sentence), or None when they are not."""
    part = (metrics or {}).get(split)
    if not isinstance(part, dict):
        return None
    classes = list(((metrics or {}).get("dataset") or {}).get("classes") or [])
    counts = part.get("class_counts") or {}
    predicted = [int(n) for n in counts.get("predicted") or []]
    true = [int(n) for n in counts.get("true") or []]
    total = sum(predicted)
    name = "validation" if split == "val" else split
    if total > 0:
        top = max(range(len(predicted)), key=lambda i: predicted[i])
        share = predicted[top] / total
        if share >= DOMINANT_SHARE:
            label = classes[top] if top < len(classes) else f"class {top}"
            return (
                f"{100 * share:.1f}% of the {total} {name} images are predicted as {label} "
                f"(at least {100 * DOMINANT_SHARE:.0f}% is a near one-class predictor)"
            )
    present = sum(1 for n in true if n > 0) or len(classes)
    balanced = part.get("balanced_accuracy")
    if present >= 2 and isinstance(balanced, (int, float)) and math.isfinite(balanced):
        limit = (1 + CHANCE_MARGIN) / present
        if balanced <= limit + 1e-12:
            return (
                f"{name} balanced accuracy {100 * balanced:.2f}% is no better than chance "
                f"(1/{present} = {100 / present:.2f}%, margin {100 * CHANCE_MARGIN:.0f}%)"
            )
    return None


def is_degenerate(metrics: dict[str, Any] | None, *, split: str = "val") -> bool:
    """True when :func:`degenerate_reason` has a reason for these metrics."""
    return degenerate_reason(metrics, split=split) is not None

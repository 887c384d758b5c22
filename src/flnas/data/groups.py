"""Demographic groups exactly as in DESIGN.md: sex (male, female) and age (young < 30, middle 30-65, old > 65)."""

from __future__ import annotations

import math

SEX_GROUPS = ("male", "female")
AGE_GROUPS = ("young", "middle", "old")
GROUPS = SEX_GROUPS + AGE_GROUPS
#: attribute -> its groups; pairs for EODD/EOPP are formed only within one attribute.
ATTRIBUTES: dict[str, tuple[str, ...]] = {"sex": SEX_GROUPS, "age": AGE_GROUPS}
#: how the paper's metric line names each group
PAPER_GROUP_NAMES = {"male": "male", "female": "female", "young": "young", "middle": "middle_age", "old": "old"}


def age_group(age_approx: float | int | str | None) -> str | None:
    """``young`` below 30, ``middle`` 30 to 65 inclusive, ``old`` above 65, ``None`` when unknown."""
    if age_approx is None or (isinstance(age_approx, str) and not age_approx.strip()):
        return None
    age = float(age_approx)
    if math.isnan(age):
        return None
    if age < 30:
        return "young"
    if age <= 65:
        return "middle"
    return "old"


def sex_group(sex: str | None) -> str | None:
    """Normalise a sex value to ``male``/``female``; ``None`` when unknown. Raises ValueError otherwise."""
    if sex is None or (isinstance(sex, float) and math.isnan(sex)):
        return None
    value = str(sex).strip().lower()
    if value in ("", "nan", "unknown", "na", "n/a"):
        return None
    if value in ("male", "m"):
        return "male"
    if value in ("female", "f"):
        return "female"
    raise ValueError(f"unknown sex value {sex!r} (expected male, female or empty)")

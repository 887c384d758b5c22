"""ISIC 2019's sensitive attributes, exactly as in DESIGN.md: sex (male, female) and age (young < 30, middle
30-65, old > 65).

This is the description of one dataset, not of flnas: everything downstream of the data layer takes the
attributes from :attr:`flnas.data.PreparedData.attributes` (:mod:`flnas.data.attributes`). What made
before groups were data (studies without stored attributes, packed predictions of format 1, the
``sex=``/``age_group=`` keywords of the metric functions) reads as these attributes.
"""

from __future__ import annotations

import math
from typing import Any

from flnas.data.attributes import SensitiveColumn, bin_value

SEX_GROUPS = ("male", "female")
AGE_GROUPS = ("young", "middle", "old")
AGE_EDGES = (30.0, 65.0)
GROUPS = SEX_GROUPS + AGE_GROUPS
#: attribute -> its groups; pairs for EODD/EOPP are formed only within one attribute.
ATTRIBUTES: dict[str, tuple[str, ...]] = {"sex": SEX_GROUPS, "age": AGE_GROUPS}
#: the attributes of data that does not name its own (older studies and stored predictions, bare keywords)
DEFAULT_ATTRIBUTES = ATTRIBUTES
#: keyword arguments that name an attribute differently (``age_group=`` is the age attribute)
KEYWORD_ATTRIBUTES = {"age_group": "age"}
#: the keys of the ISIC attributes in packed predictions of format 1 (:mod:`flnas.evaluate.stored`)
PACKED_KEYS = {"sex": "sex", "age": "age_group"}
#: how the paper's metric line names each group
PAPER_GROUP_NAMES = {"male": "male", "female": "female", "young": "young", "middle": "middle_age", "old": "old"}


def age_group(age_approx: float | int | str | None) -> str | None:
    """``young`` below 30, ``middle`` 30 to 65 inclusive, ``old`` above 65, ``None`` when unknown."""
    return bin_value(age_approx, AGE_EDGES, AGE_GROUPS)


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


def _age_in_years_group(value: Any) -> str | None:
    """:func:`age_group` of a cell that must be an age from 0 to 130 (as the ISIC loader: inf or -5 is no age)."""
    try:
        group = age_group(value)
        if group is not None and not 0 <= float(value) <= 130:
            raise ValueError(value)
    except TypeError:
        raise ValueError(value) from None
    return group


#: the sensitive columns of an ISIC predictions.csv, which `flnas metrics` reads when not told others
PREDICTION_COLUMNS = (
    SensitiveColumn("sex", "sex", groups=SEX_GROUPS, convert=sex_group,
                    problem="unknown value {shown} (expected male, female or empty)"),
    SensitiveColumn("age_approx", "age", groups=AGE_GROUPS, convert=_age_in_years_group,
                    problem="{shown}, not an age in years (a number from 0 to 130; leave it empty when unknown)"),
)

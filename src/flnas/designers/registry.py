"""A small registry of designers, in the manner of timm's ``register_model``/``create_model``.

A designer module registers its class with ``@register_designer("name")``; ``create_designer(name,
**options)`` imports the module that provides a built-in name on first use, so ``flnas --help`` never
imports torch or openai.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from flnas.designers.base import Designer
from flnas.errors import FlnasError

T = TypeVar("T", bound=type[Designer])

_REGISTRY: dict[str, type[Designer]] = {}
# built-in designers and the modules that register them (imported lazily)
BUILTIN: dict[str, str] = {
    "llm": "flnas.designers.llm",
    "heuristic": "flnas.designers.heuristic",
    "random": "flnas.designers.random",
    "evolution": "flnas.designers.evolution",
    "fahana-rl": "flnas.designers.fahana",
    "tpe": "flnas.designers.samplers",
    "nsga2": "flnas.designers.samplers",
    "gp": "flnas.designers.samplers",
}


def register_designer(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available as ``create_designer(name)`` and set ``cls.name``."""

    def wrap(cls: T) -> T:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load(name: str) -> None:
    module = BUILTIN.get(name)
    if module and name not in _REGISTRY:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency inside the module: let it show
                raise


def designer_names() -> list[str]:
    """Every designer that can be created now (built-ins whose modules exist, plus registered ones)."""
    for name in BUILTIN:
        _load(name)
    return sorted(_REGISTRY)


def get_designer_class(name: str) -> type[Designer]:
    """The class registered as ``name``; one sentence listing the choices when there is none."""
    _load(name)
    if name not in _REGISTRY:
        raise FlnasError(f"unknown designer {name!r}; choose one of {', '.join(designer_names())}")
    return _REGISTRY[name]


def designer_options(name: str) -> set[str]:
    """Keyword options the designer's constructor accepts (so callers can pass only those)."""
    init = get_designer_class(name).__init__
    if init is object.__init__:
        return set()
    params = inspect.signature(init).parameters
    return {
        p.name
        for p in params.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def create_designer(name: str, **options: Any) -> Designer:
    """Build the designer registered as ``name`` with keyword ``options``; None-valued options are dropped."""
    cls = get_designer_class(name)
    options = {k: v for k, v in options.items() if v is not None}
    params = inspect.signature(cls.__init__).parameters if cls.__init__ is not object.__init__ else {}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(options) - designer_options(name)) if not takes_any else []
    if unknown:
        accepted = ", ".join(sorted(designer_options(name))) or "none"
        raise FlnasError(f"designer {name!r} has no option {unknown[0]!r}; it accepts: {accepted}")
    return cls(**options)

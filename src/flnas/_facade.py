"""Subpackages that are also the public function of their name: ``flnas.evaluate(...)``, ``flnas.report(...)``.

``flnas.evaluate`` and ``flnas.report`` are subpackages (the evaluator, the report), and Python binds a
subpackage to its parent's attribute when it is imported, so a plain function ``flnas.evaluate`` would be
replaced by the module as soon as anything imports the evaluator. Instead the subpackage's module object is
made callable: calling it calls the API function its ``__call_target__`` names ("module:function"),
imported by name on the call (the API sits above these packages; they never import it).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class CallableModule(types.ModuleType):
    """A module whose call runs the function named by its ``__call_target__``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, _, name = self.__dict__["__call_target__"].partition(":")
        return getattr(importlib.import_module(module), name)(*args, **kwargs)


def make_callable(module_name: str, target: str) -> None:
    """Make the module ``module_name`` callable as ``target`` ("package.module:function")."""
    module = sys.modules[module_name]
    module.__dict__["__call_target__"] = target
    module.__class__ = CallableModule

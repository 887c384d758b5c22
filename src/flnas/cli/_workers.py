"""``--workers N``: the command line each worker process runs (this one, minus ``--workers``)."""

from __future__ import annotations

import enum
import sys
from typing import Any


def worker_command(ctx: Any, drop: tuple[str, ...] = ("workers",)) -> list[str]:
    """``python -m flnas <command> <the options the user gave>``, without the ``drop`` parameters.

    Options left at their defaults are left out (each worker resolves them as this process would), so a
    worker's command is what the user would type to start one worker by hand. ``ctx`` is the command's
    ``typer.Context`` (duck-typed: typer may carry its own copy of click).
    """
    args = [sys.executable, "-m", "flnas", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        name = param.name
        if name is None or name in drop or name not in ctx.params:
            continue
        source = ctx.get_parameter_source(name)
        if source is None or source.name == "DEFAULT":
            continue
        value = ctx.params[name]
        if param.param_type_name != "option":
            args += [_text(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        elif param.is_flag and not param.secondary_opts:
            args += [param.opts[0]] if value else []
        elif param.is_flag:
            args.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.multiple:
            for item in value or ():
                args += [param.opts[0], _text(item)]
        elif value is not None:
            args += [param.opts[0], _text(value)]
    return args


def _text(value: Any) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)

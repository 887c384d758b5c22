"""The package graph flows one way: no module imports one from a layer above its own (DESIGN.md).

Every import in every module under ``src/flnas`` is read with ``ast`` -- at the top of the file, inside
functions and under ``TYPE_CHECKING`` alike -- and its target's layer compared with the importer's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "flnas"

# lowest first; a module may import its own layer and any layer below it, never one above
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "jsonsafe", "paths", "records", "_facade"}),
    frozenset({"data"}),
    frozenset({"space"}),
    frozenset({"designers"}),
    frozenset({"evaluate"}),
    frozenset({"study"}),
    frozenset({"report"}),
    frozenset({"api"}),
    frozenset({"cli"}),
)
TOP = len(LAYERS)  # flnas/__init__.py and flnas/__main__.py: the package's entry points, above everything


def layer_of(parts: tuple[str, ...]) -> int:
    """The layer of module ``flnas.<parts...>`` (its first part names the subpackage or bottom module)."""
    if parts in ((), ("__main__",)):
        return TOP
    for level, names in enumerate(LAYERS):
        if parts[0] in names:
            return level
    raise AssertionError(f"flnas.{'.'.join(parts)} is in no layer: add it to LAYERS in {Path(__file__).name}")


def module_parts(path: Path, root: Path = SRC) -> tuple[str, ...]:
    """``src/flnas/study/loop.py`` -> ("study", "loop"); a package's ``__init__.py`` is the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported(path: Path, root: Path = SRC) -> list[tuple[int, tuple[str, ...]]]:
    """(line, flnas module parts) of every flnas import in ``path``, relative imports resolved."""
    here = module_parts(path, root)
    package = here if path.name == "__init__.py" else here[:-1]
    out: list[tuple[int, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
            out += [(node.lineno, tuple(name[1:])) for name in names if name[0] == "flnas"]
        elif isinstance(node, ast.ImportFrom):
            module = tuple(node.module.split(".")) if node.module else ()
            if node.level:
                base = package[: len(package) - node.level + 1] + module
            elif module[:1] == ("flnas",):
                base = module[1:]
            else:
                continue
            if node.module is None or not base:  # ``from flnas import records``: the names are modules
                out += [(node.lineno, (*base, a.name)) for a in node.names]
            else:
                out.append((node.lineno, base))
    return out


def upward_imports(root: Path = SRC) -> list[str]:
    """``file:line imports flnas.x`` for every import of a module from a layer above the importer's."""
    found = []
    for path in sorted(root.rglob("*.py")):
        here = module_parts(path, root)
        for line, target in imported(path, root):
            if target == ("__version__",):
                continue
            if layer_of(target) > layer_of(here):
                found.append(f"{path.relative_to(root.parent)}:{line} imports flnas.{'.'.join(target)}")
    return found


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports() == []


def test_every_module_has_a_layer():
    for path in SRC.rglob("*.py"):
        layer_of(module_parts(path))  # raises for a new subpackage or bottom module missing from LAYERS


@pytest.mark.parametrize(
    ("source", "upward"),
    [
        ("from flnas.study.loop import run_search\n", True),
        ("def f():\n    import flnas.report.table\n", True),
        ("from ..study import history\n", True),
        ("from flnas import cli\n", True),
        ("from flnas.records import Candidate\nfrom flnas.space import spec_key\n", False),
        ("from .base import Designer\n", False),
    ],
)
def test_an_upward_import_in_a_designer_is_found(tmp_path, source, upward):
    root = tmp_path / "flnas"
    (root / "designers").mkdir(parents=True)
    (root / "designers" / "__init__.py").write_text("")
    (root / "designers" / "x.py").write_text(source)
    assert bool(upward_imports(root)) is upward

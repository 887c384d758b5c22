"""docs/api.md runs as written: its python blocks, in order, in one namespace, in a fresh folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def test_the_page_has_a_block_for_every_call():
    code = "\n".join(python_blocks(DOC.read_text(encoding="utf-8")))
    for call in ("flnas.search(", ".export(", "flnas.report(", "flnas.evaluate(", "flnas.audit(", "flnas.experiment("):
        assert call in code, call


@pytest.mark.slow
def test_the_walk_through_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__api_md__"}
    for number, block in enumerate(python_blocks(DOC.read_text(encoding="utf-8")), start=1):
        exec(compile(block, f"docs/api.md block {number}", "exec"), namespace)  # noqa: S102 - our own page
    out = capsys.readouterr().out
    assert "test balanced accuracy" in out and "1 new trial in this run" in out
    assert "was created with other settings" in out  # the refused setting prints the command's sentence
    assert {"model.onnx", "model.py", "model.pt", "spec.json", "metrics.json", "predictions.csv"} <= {
        p.name for p in (tmp_path / "best").iterdir()
    }
    assert (tmp_path / "report" / "report.html").is_file()
    assert (tmp_path / "experiment" / "report" / "table.md").is_file()

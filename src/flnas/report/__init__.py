"""Table I and the report (terminal, Markdown, CSV, LaTeX, one HTML page with the plots).

Every number comes from the study being reported: the search candidates, the baselines trained under the same
evaluator settings (:mod:`flnas.study.baselines`), and optional re-runs with other seeds. Nothing is copied
from the paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flnas._facade import make_callable
from flnas.report.formats import to_csv, to_latex, to_markdown, to_rich
from flnas.report.repeats import run_repeats
from flnas.report.table import ReportTable, build_table, run_notes

FORMATS = ("terminal", "md", "csv", "tex", "html", "png")

__all__ = [
    "FORMATS",
    "ReportTable",
    "build_table",
    "run_notes",
    "run_repeats",
    "to_csv",
    "to_latex",
    "to_markdown",
    "to_rich",
    "write_report",
]


def write_report(
    table: ReportTable,
    out_dir: Path,
    *,
    formats: tuple[str, ...] | list[str] = FORMATS,
    console: Any = None,
) -> dict[str, Path]:
    """Write the requested formats under ``out_dir`` (table.md, table.csv, table.tex, report.html, *.png).

    ``terminal`` prints the rich table and the notes on ``console``. Returns format -> written path.
    """
    from flnas.errors import FlnasError

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise FlnasError(f"--formats: unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    notes = "\n".join(f"- {note}" for note in table.notes)
    if "md" in formats:
        path = out_dir / "table.md"
        path.write_text(
            f"# Table I: study {table.study_name}\n\n{to_markdown(table)}\n{notes}\n", encoding="utf-8"
        )
        written["md"] = path
    if "csv" in formats:
        written["csv"] = out_dir / "table.csv"
        written["csv"].write_text(to_csv(table), encoding="utf-8")
    if "tex" in formats:
        written["tex"] = out_dir / "table.tex"
        written["tex"].write_text(to_latex(table), encoding="utf-8")
    if "html" in formats or "png" in formats:
        from flnas.report.html import to_html
        from flnas.report.plots import render_plots

        plots = render_plots(table, out_dir if "png" in formats else None)
        if "png" in formats:
            for name in plots:
                written[f"png:{name}"] = out_dir / f"{name}.png"
        if "html" in formats:
            written["html"] = out_dir / "report.html"
            written["html"].write_text(to_html(table, plots), encoding="utf-8")
    if "terminal" in formats and console is not None:
        console.print(to_rich(table))
        for note in table.notes:
            console.print(f"  {note}", highlight=False, markup=False)
    return written

# `flnas.report(...)` is the API function (flnas._facade explains why the package is callable)
make_callable(__name__, "flnas.api.experiments:report")

"""One self-contained HTML page: Table I, the notes and the plots (PNGs inlined as base64)."""

from __future__ import annotations

import base64
import html

from flnas.report.formats import cell_text, interval_text
from flnas.report.plots import CAPTIONS
from flnas.report.table import ReportTable

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: right; }
th { border-bottom: 2px solid #222; }
td.name, th.name { text-align: left; }
tr.group-start td { border-top: 2px solid #222; }
td.mark { font-weight: bold; color: #0a6b2a; }
.ci { display: block; font-size: 0.8em; font-weight: normal; color: #666; white-space: nowrap; }
figure { margin: 1.5em 0; }
figcaption { font-size: 0.85em; color: #555; max-width: 50em; }
.notes li { margin: 0.2em 0; }
"""


def to_html(table: ReportTable, plots: dict[str, bytes], *, title: str | None = None) -> str:
    """The report page; marked cells are bold (class ``mark``) and keep the paper's arrow; intervals under
    the values (class ``ci``)."""
    esc = html.escape
    title = title or f"flnas report: study {table.study_name}"
    head = "".join(f'<th class="name">{esc(h)}</th>' for h in ("Group", "DNN"))
    head += "".join(f"<th>{esc(table.headers[col.key])}</th>" for col in table.columns)
    body = []
    previous = None
    for row in table.rows:
        cls = ' class="group-start"' if previous is not None and row.group != previous else ""
        previous = row.group
        cells = [f'<td class="name">{esc(row.group)}</td>', f'<td class="name">{esc(row.label)}</td>']
        for col in table.columns:
            mark = ' class="mark"' if col.key in row.marks else ""
            ci = interval_text(row, col)
            ci_html = f'<span class="ci">{esc(ci)}</span>' if ci else ""
            cells.append(f"<td{mark}>{esc(cell_text(row, col, interval=False))}{ci_html}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    figures = []
    for name, png in plots.items():
        data = base64.b64encode(png).decode("ascii")
        caption = esc(CAPTIONS.get(name, name))
        figures.append(
            f'<figure id="{esc(name)}"><img alt="{esc(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    notes = "".join(f"<li>{esc(note)}</li>" for note in table.notes)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{esc(title)}</h1>\n<h2>Table I ({esc(table.split)} split)</h2>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
        f'<ul class="notes">{notes}</ul>\n<h2>Plots</h2>\n' + "\n".join(figures) + "\n</body></html>\n"
    )

"""Table I in each output format: Markdown, CSV (plain numbers), LaTeX (booktabs) and a rich table.

Cells read ``mean`` or ``mean ± std`` (with repeats), followed by ``[lo, hi]``, the 95% bootstrap interval
over the test images, where the study has one; a searched value better than every baseline carries the
paper's up/down mark (bold green in the terminal, ``$\\uparrow$``/``$\\downarrow$`` in LaTeX, a column of
its own in the CSV, which has the interval in ``<metric>_lo``/``<metric>_hi`` columns).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flnas.report.table import UP, Column, ReportTable, Row

__all__ = [
    "cell_text",
    "format_number",
    "interval_text",
    "tex_escape",
    "to_csv",
    "to_latex",
    "to_markdown",
    "to_rich",
]


def format_number(value: float | None, style: str) -> str:
    if value is None:
        return "n/a"
    if style == "percent":
        return f"{100 * value:.2f}%"
    if style == "int":
        return f"{round(value):,}"
    if style == "mb":
        return f"{value:.2f}"
    if style == "seconds":
        return f"{value:.3g}"
    return f"{value:.4f}"


def format_std(value: float, style: str) -> str:
    if style == "percent":
        return f"{100 * value:.2f}"
    if style == "int":
        return f"{round(value):,}"
    return format_number(value, style)


def interval_text(row: Row, col: Column) -> str:
    """``[lo, hi]`` of the cell's bootstrap interval (percent cells in percentage points), or ""."""
    interval = row.values[col.key].interval
    if interval is None:
        return ""
    return f"[{format_std(interval[0], col.style)}, {format_std(interval[1], col.style)}]"


def cell_text(row: Row, col: Column, *, mark: bool = True, interval: bool = True) -> str:
    """The cell as plain text: optional mark, mean, ``± std`` when there were repeats, ``[lo, hi]``."""
    stat = row.values[col.key]
    text = format_number(stat.mean, col.style)
    if stat.std is not None and col.style != "int":
        text += f" ± {format_std(stat.std, col.style)}"
    if interval and stat.interval is not None:
        text += f" {interval_text(row, col)}"
    if mark and col.key in row.marks:
        text = row.marks[col.key] + text
    return text


def to_markdown(table: ReportTable) -> str:
    headers = ["Group", "DNN"] + [table.headers[col.key] for col in table.columns]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * len(table.columns)) + "|",
    ]
    for row in table.rows:
        cells = [row.group, row.label] + [cell_text(row, col) for col in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: ReportTable) -> str:
    """Plain numbers (not formatted): a std column per metric with repeats, lo/hi columns, and the marks."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    header = ["group", "dnn", "trial", "designer", "runs"]
    with_ci = _interval_columns(table)
    for col in table.columns:
        header.append(col.key)
        if table.repeats:
            header.append(f"{col.key}_std")
        if col.key in with_ci:
            header += [f"{col.key}_lo", f"{col.key}_hi"]
    writer.writerow(header + ["marks"])
    for row in table.rows:
        line: list[Any] = [
            row.group,
            row.label,
            row.candidate.number,
            row.candidate.baseline or row.candidate.designer,
            len(row.runs),
        ]
        for col in table.columns:
            stat = row.values[col.key]
            line.append("" if stat.mean is None else repr(stat.mean))
            if table.repeats:
                line.append("" if stat.std is None else repr(stat.std))
            if col.key in with_ci:
                line += ["", ""] if stat.interval is None else [repr(v) for v in stat.interval]
        line.append(";".join(f"{key}{mark}" for key, mark in row.marks.items()))
        writer.writerow(line)
    return buf.getvalue()


def _interval_columns(table: ReportTable) -> set[str]:
    """Keys of the columns in which at least one row has an interval."""
    return {key for row in table.rows for key, stat in row.values.items() if stat.interval is not None}


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: ReportTable) -> str:
    """A booktabs ``tabular`` (needs booktabs); marks as ``$\\uparrow$`` / ``$\\downarrow$``."""
    spec = "ll" + "r" * len(table.columns)
    headers = ["Group", "DNN"] + [table.headers[col.key] for col in table.columns]
    lines = [
        f"\\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(tex_escape(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    previous = None
    for row in table.rows:
        if previous is not None and row.group != previous:
            lines.append(r"\midrule")
        previous = row.group
        cells = [tex_escape(row.group), tex_escape(row.label)]
        for col in table.columns:
            text = tex_escape(cell_text(row, col, mark=False)).replace("±", r"$\pm$")
            mark = row.marks.get(col.key)
            if mark:
                text = (r"$\uparrow$" if mark == UP else r"$\downarrow$") + text
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


SHORT_HEADERS = {
    "accuracy": "Acc",
    "balanced_accuracy": "Bal. acc",
    "unfairness": "Unfairness",
    "eodd": "EODD",
    "eopp1": "EOPP1",
    "eopp2": "EOPP2",
    "params": "# params",
    "peak_memory_mb": "Mem MB",
    "latency_s": "Latency s",
    "onnx_latency_s": "ONNX s",
}


def to_rich(table: ReportTable) -> Any:
    """A rich Table for the terminal: short headers (full ones in the caption), marked cells in bold green."""
    from rich.markup import escape
    from rich.table import Table

    latency = table.headers["latency_s"].removeprefix("Latency (s, ").removesuffix(")")
    caption = (
        f"Latency s: batch {table.setup.get('train', {}).get('latency_batch_size', 2)} on {latency}; "
        "ONNX s: ONNX Runtime, 1 thread; rows above the line are baselines"
    )
    out = Table(title=f"Table I - study {table.study_name} ({table.split} split)", caption=caption)
    out.add_column("DNN", style="bold", no_wrap=True)
    for col in table.columns:
        widths = [len(interval_text(row, col)) for row in table.rows]  # keep "[lo, hi]" on one line
        out.add_column(SHORT_HEADERS.get(col.key, col.header), justify="right", min_width=max(widths, default=0))
    for i, row in enumerate(table.rows):
        cells = [row.label]
        for col in table.columns:
            text = escape(cell_text(row, col, interval=False))
            text = f"[bold green]{text}[/]" if col.key in row.marks else text
            if row.values[col.key].interval is not None:
                text += f"\n[dim]{escape(interval_text(row, col))}[/]"
            cells.append(text)
        last_of_group = i + 1 < len(table.rows) and table.rows[i + 1].group != row.group
        out.add_row(*cells, end_section=last_of_group)
    return out



"""Table I in each output format: Markdown, CSV (plain numbers), LaTeX (booktabs) and a rich table.

Cells read ``mean`` or ``mean ± std`` (with repeats); a searched value better than every baseline carries
the paper's up/down mark (bold green in the terminal, ``$\\uparrow$``/``$\\downarrow$`` in LaTeX, a column of
its own in the CSV).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flnas.report.table import UP, Column, ReportTable, Row

__all__ = ["cell_text", "format_number", "tex_escape", "to_csv", "to_latex", "to_markdown", "to_rich"]


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


def cell_text(row: Row, col: Column, *, mark: bool = True) -> str:
    """The cell as plain text: optional mark, mean, and ``± std`` when there were repeats."""
    stat = row.values[col.key]
    text = format_number(stat.mean, col.style)
    if stat.std is not None and col.style != "int":
        text += f" ± {format_std(stat.std, col.style)}"
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
    """Plain numbers (not formatted), one std column per metric when there were repeats, and the marks."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    header = ["group", "dnn", "trial", "designer", "runs"]
    for col in table.columns:
        header.append(col.key)
        if table.repeats:
            header.append(f"{col.key}_std")
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
        line.append(";".join(f"{key}{mark}" for key, mark in row.marks.items()))
        writer.writerow(line)
    return buf.getvalue()


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
    from rich.table import Table

    latency = table.headers["latency_s"].removeprefix("Latency (s, ").removesuffix(")")
    caption = (
        f"Latency s: batch {table.setup.get('train', {}).get('latency_batch_size', 2)} on {latency}; "
        "ONNX s: ONNX Runtime, 1 thread; rows above the line are baselines"
    )
    out = Table(title=f"Table I - study {table.study_name} ({table.split} split)", caption=caption)
    out.add_column("DNN", style="bold", no_wrap=True)
    for col in table.columns:
        out.add_column(SHORT_HEADERS.get(col.key, col.header), justify="right")
    for i, row in enumerate(table.rows):
        cells = [row.label]
        for col in table.columns:
            text = cell_text(row, col)
            cells.append(f"[bold green]{text}[/]" if col.key in row.marks else text)
        last_of_group = i + 1 < len(table.rows) and table.rows[i + 1].group != row.group
        out.add_row(*cells, end_section=last_of_group)
    return out



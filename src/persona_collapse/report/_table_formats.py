"""A small table model written as CSV (full precision), Markdown, LaTeX and HTML.

Display formats (Markdown, LaTeX, HTML) round each number to its column's
``decimals`` and merge a value with its standard error (``0.79 ± 0.03``);
CSV keeps every column separate with six decimals, for machines.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._results import StudyResult

Cell = str | int | float | bool | None

SIMULATED_SUFFIX = " [SIMULATED data]"
"""Appended to a table's caption when the study's data are simulated."""


def simulated_suffix(result: StudyResult) -> str:
    """:data:`SIMULATED_SUFFIX` when ``result``'s data are simulated, else ``""``."""
    return SIMULATED_SUFFIX if result.simulated else ""


@dataclass(frozen=True)
class Column:
    """One column: its CSV name, its display heading, decimals, and the SE column it carries."""

    name: str
    heading: str = ""
    decimals: int = 2
    signed: bool = False
    se: str | None = None
    """Name of the column holding this column's standard error (merged in display formats)."""

    @property
    def title(self) -> str:
        return self.heading or self.name


@dataclass(frozen=True)
class Table:
    """Rows of cells under named columns; ``name`` is the file stem under ``tables/``."""

    name: str
    caption: str
    columns: tuple[Column, ...]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""

    def __post_init__(self) -> None:
        width = len(self.columns)
        if any(len(r) != width for r in self.rows):
            raise ValueError(f"table {self.name}: every row needs {width} cells")

    def index(self, name: str) -> int:
        return [c.name for c in self.columns].index(name)

    def column(self, name: str) -> list[Cell]:
        i = self.index(name)
        return [r[i] for r in self.rows]

    @property
    def display_columns(self) -> list[Column]:
        """Columns shown in display formats: SE columns are folded into their value columns."""
        folded = {c.se for c in self.columns if c.se}
        return [c for c in self.columns if c.name not in folded]


def _number(value: float, decimals: int, signed: bool) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
    return text.replace("-", "−") if text.startswith("-") else text


def display_cell(table: Table, row: Sequence[Cell], column: Column) -> str:
    """The text of one cell in display formats (rounded, with ``± SE`` when it has one)."""
    value = row[table.index(column.name)]
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = _number(value, column.decimals, column.signed)
        if column.se is not None:
            se = row[table.index(column.se)]
            if isinstance(se, int | float) and not isinstance(se, bool) and not math.isnan(se):
                text += f" ± {_number(float(se), column.decimals, False)}"
        return text
    return str(value)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""Leading characters that make a spreadsheet read a cell as a formula (CSV injection)."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_text(text: str) -> str:
    """A text cell safe to open in a spreadsheet: one that starts like a formula
    (``=``, ``+``, ``-``, ``@``, tab, carriage return) gets a leading ``'``; text that
    is a number (``-0.5``) stays as it is."""
    if text.startswith(_FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6f}"
    if isinstance(value, str):
        return csv_text(value)
    return str(value)


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.name for c in table.columns])
    writer.writerows([[_csv_cell(v) for v in row] for row in table.rows])
    return buffer.getvalue()


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    cols = table.display_columns
    lines = [
        f"**{_md_escape(table.caption)}**",
        "",
        "| " + " | ".join(_md_escape(c.title) for c in cols) + " |",
        "| " + " | ".join("---" for _ in cols) + " |",
    ]
    lines += [
        "| " + " | ".join(_md_escape(display_cell(table, row, c)) for c in cols) + " |"
        for row in table.rows
    ]
    if table.note:
        lines += ["", _md_escape(table.note)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
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
    "±": r"$\pm$",
    "−": r"$-$",
    "σ": r"$\sigma$",
    "Δ": r"$\Delta$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    cols = table.display_columns
    numeric = [
        any(isinstance(r[table.index(c.name)], int | float) for r in table.rows) for c in cols
    ]
    spec = "".join("r" if n else "l" for n in numeric)
    lines = [
        "% requires \\usepackage{booktabs}",
        "\\begin{table}[ht]",
        "\\centering",
        f"\\caption{{{latex_escape(table.caption)}}}",
        f"\\label{{tab:{table.name}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(c.title) for c in cols) + " \\\\",
        "\\midrule",
    ]
    lines += [
        " & ".join(latex_escape(display_cell(table, row, c)) for c in cols) + " \\\\"
        for row in table.rows
    ]
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.note:
        lines.append(f"\\par\\smallskip{{\\footnotesize {latex_escape(table.note)}}}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    """An HTML ``<table>`` (escaped), numbers right-aligned, with ``data-column`` names."""
    cols = table.display_columns
    head = "".join(
        f'<th scope="col" data-column="{html.escape(c.name)}">{html.escape(c.title)}</th>'
        for c in cols
    )
    body = []
    for row in table.rows:
        cells = []
        for c in cols:
            value = row[table.index(c.name)]
            cls = (
                ' class="num"'
                if isinstance(value, int | float) and not isinstance(value, bool)
                else ""
            )
            cells.append(
                f'<td data-column="{html.escape(c.name)}"{cls}>'
                f"{html.escape(display_cell(table, row, c))}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    parts = [
        f'<table id="table-{html.escape(table.name)}">',
        f"<caption>{html.escape(table.caption)}</caption>",
        f"<thead><tr>{head}</tr></thead>",
        "<tbody>",
        *body,
        "</tbody>",
        "</table>",
    ]
    if table.note:
        parts.append(f'<p class="note">{html.escape(table.note)}</p>')
    return "\n".join(parts)


def write_table(table: Table, folder: Path) -> dict[str, Path]:
    """Write ``NAME.csv``, ``NAME.md`` and ``NAME.tex`` under ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext, render in (("csv", to_csv), ("md", to_markdown), ("tex", to_latex)):
        path = folder / f"{table.name}.{ext}"
        path.write_text(render(table), encoding="utf-8")
        out[ext] = path
    return out


def metric_columns() -> tuple[Column, ...]:
    """S, then S without its noise floor (S*) and the floor, then σ̄ and R, each ± SE."""
    return (
        Column("S", se="S_se"),
        Column("S_se"),
        Column("S_corrected", "S*", se="S_corrected_se"),
        Column("S_corrected_se"),
        Column("S_noise_floor", "noise floor"),
        Column("sigma_bar", "σ̄", 3, se="sigma_bar_se"),
        Column("sigma_bar_se"),
        Column("R", se="R_se"),
        Column("R_se"),
    )

"""Printing the capability control's results (task sources): tables, JSON or CSV on stdout."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from ..stats import DELTA_STATISTICS
from ._output import _console, _emitted_as_data

TASK_METRIC_KEYS = (
    "n_total",
    "n_replied",
    "n_valid",
    "n_items",
    "reply_rate",
    "format_valid_rate",
    "accuracy_all",
    "accuracy_valid",
    "majority_accuracy",
    "non_unanimity_rate",
    "mean_distinct_answers",
    "mean_gini",
    "accuracy_se",
    "non_unanimity_se",
    "gini_se",
    "accuracy_se_item",
    "accuracy_se_rep",
    "non_unanimity_se_item",
    "non_unanimity_se_rep",
    "gini_se_item",
    "gini_se_rep",
)
"""CSV columns of a task source's metrics (after ``source`` and ``instrument``)."""

DELTA_NAMES = tuple(DELTA_STATISTICS)
DELTA_KEYS = ("n_items", *(f"{n}{s}" for n in DELTA_NAMES for s in ("", "_lo", "_hi", "_sig")))
"""CSV columns of a variant's paired deltas."""

DELTA_HEADINGS = {
    "accuracy": "d accuracy pp",
    "non_unanimity": "d non-unanimity pp",
    "gini": "d Gini x100",
}
"""Table heading of each delta of :data:`~persona_collapse.stats.DELTA_STATISTICS` (each
printed x100, with its interval)."""


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _pct(value: float | None, se: float | None = None) -> str:
    """A share as a percentage, ``± se`` when the SE is defined; n/a when the share is not."""
    if not _finite(value):
        return "n/a"
    return f"{value:.1%} ± {se:.1%}" if _finite(se) else f"{value:.1%}"


def _gini(value: float | None, se: float | None) -> str:
    """A mean Gini impurity to 3 decimals, ``± se`` when defined; n/a when it is not."""
    if not _finite(value):
        return "n/a"
    return f"{value:.3f} ± {se:.3f}" if _finite(se) else f"{value:.3f}"


def _row(doc: dict[str, Any]) -> list[Any]:
    return [doc["source"], doc["instrument"], *(doc.get(k) for k in TASK_METRIC_KEYS)]


def print_task_metrics(docs: Sequence[dict[str, Any]], fmt: str) -> None:
    """The ``metrics`` of task sources: accuracy, majority accuracy, instability, with SEs."""
    header = ["source", "instrument", *TASK_METRIC_KEYS]
    if _emitted_as_data(docs, fmt, header, lambda: [_row(d) for d in docs]):
        return
    table = Table(title="capability control (task sources)", title_justify="left")
    columns = ("source", "items", "replies parsed", "accuracy (all)", "accuracy (parsed)")
    for col in (*columns, "majority", "non-unanimous", "Gini"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for d in docs:
        table.add_row(
            d["source"],
            str(d["n_items"]),
            _pct(d["format_valid_rate"]),
            _pct(d["accuracy_all"]),
            _pct(d["accuracy_valid"], d["accuracy_se"]),
            _pct(d["majority_accuracy"]),
            _pct(d["non_unanimity_rate"], d["non_unanimity_se"]),
            _gini(d["mean_gini"], d["gini_se"]),
        )
    console = _console()
    console.print(table)
    console.print(
        "accuracy against the gold answer (all: an unparsed reply counts wrong); majority: "
        "the modal answer per item; non-unanimous: items whose repetitions disagree; Gini: "
        "mean answer impurity; ± two-level bootstrap SE (items and repetitions).",
        highlight=False,
    )


def _delta_cell(delta: dict[str, Any], name: str, scale: float = 100.0) -> str:
    value, lo, hi = (delta.get(f"{name}{s}") for s in ("", "_lo", "_hi"))
    if value is None or lo is None or hi is None or not math.isfinite(value):
        return "n/a"
    mark = " *" if delta.get(f"{name}_sig") else ""
    return f"{value * scale:+.1f} [{lo * scale:+.1f}, {hi * scale:+.1f}]{mark}"


def _comparison_rows(doc: dict[str, Any]) -> list[list[Any]]:
    """The CSV rows of a task comparison: the base, then each variant with its deltas."""
    rows = [["base", *_row(doc["base"]), *([""] * len(DELTA_KEYS))]]
    rows += [
        [label, *_row(v["metrics"]), *(v["delta"].get(k) for k in DELTA_KEYS)]
        for label, v in doc["variants"].items()
    ]
    return rows


def print_task_comparison(doc: dict[str, Any], fmt: str) -> None:
    """The ``compare`` of task sources: each variant's paired deltas against the base."""
    header = ["variant", "source", "instrument", *TASK_METRIC_KEYS, *DELTA_KEYS]
    if _emitted_as_data(doc, fmt, header, lambda: _comparison_rows(doc)):
        return
    table = Table(title="task variants against base (paired deltas)", title_justify="left")
    headings = [DELTA_HEADINGS[name] for name in DELTA_NAMES]
    for col in ("variant", "accuracy", *headings):
        table.add_column(col, justify="left" if col == "variant" else "right")
    base = doc["base"]
    table.add_row("base", _pct(base["accuracy_all"]), *([""] * len(DELTA_NAMES)))
    for label, v in doc["variants"].items():
        d = v["delta"]
        table.add_row(
            label,
            _pct(v["metrics"]["accuracy_all"]),
            *(_delta_cell(d, name) for name in DELTA_NAMES),
        )
    console = _console()
    console.print(table)
    console.print(
        "variant - base over the shared items [95% paired bootstrap interval]; "
        "* the interval excludes 0.",
        highlight=False,
    )

"""The capability control's tables: task readouts with paired deltas, and instability by instrument.

Accuracy, format-valid rate and non-unanimity are in percent, their deltas in
percentage points (variant - base); the mean Gini impurity and its delta are
dimensionless (0: every repetition gives the same answer). Accuracy is over
every row (an unparsed reply counts wrong); its 95% interval is accuracy ±
1.96 SE (two-level bootstrap: items, stratified by subject, and repetitions);
the deltas' intervals are paired bootstrap percentile intervals over the items
both sides share, significant when they exclude 0.
"""

from __future__ import annotations

import math
from typing import Any

from ..stats import DELTA_STATISTICS, Instability
from ._results import StudyResult
from ._table_formats import Cell, Column, Table, simulated_suffix
from ._task_results import TaskResult, questionnaire_label, task_label

DELTA_FORMATS: dict[str, tuple[str, float, int]] = {
    "accuracy": ("Δaccuracy (pp)", 100.0, 1),
    "non_unanimity": ("Δnon-unanimity (pp)", 100.0, 1),
    "gini": ("ΔGini", 1.0, 3),
}
"""Heading, scale and decimals of each delta of :data:`~persona_collapse.stats.DELTA_STATISTICS`
(a statistic without its entry here fails on import, not by a missing column)."""

_DELTAS = tuple((key, *DELTA_FORMATS[key]) for key in DELTA_STATISTICS)


def _delta_cells(delta: dict[str, Any] | None) -> list[Cell]:
    """Point, low, high (scaled) and significance of each delta; n/a for the base."""
    out: list[Cell] = []
    for key, _heading, scale, _decimals in _DELTAS:
        if delta is None:
            out += [math.nan, math.nan, math.nan, None]
            continue
        out += [
            scale * float(delta[key]),
            scale * float(delta[f"{key}_lo"]),
            scale * float(delta[f"{key}_hi"]),
            bool(delta[f"{key}_sig"]),
        ]
    return out


def _row(family: str, label: str, task: TaskResult) -> list[Cell]:
    m = task.metrics
    lo, hi = task.accuracy_ci
    return [
        family,
        label,
        task_label(task.name),
        int(m["n_items"]),
        100 * task.accuracy,
        100 * float(m["accuracy_se"]),
        100 * lo,
        100 * hi,
        100 * float(m["format_valid_rate"]),
        100 * float(m["non_unanimity_rate"]),
        100 * float(m["non_unanimity_se"]),
        float(m["mean_gini"]),
        float(m["gini_se"]),
        math.nan if task.delta is None else int(task.delta["n_items"]),
        *_delta_cells(task.delta),
    ]


def _delta_columns() -> list[Column]:
    cols: list[Column] = []
    for key, heading, _scale, decimals in _DELTAS:
        cols += [
            Column(f"d_{key}", heading, decimals, True),
            Column(f"d_{key}_lo", "95% CI low", decimals, True),
            Column(f"d_{key}_hi", "95% CI high", decimals, True),
            Column(f"d_{key}_sig", "significant"),
        ]
    return cols


def capability_table(result: StudyResult) -> Table | None:
    """Per family, variant and task: accuracy (95% CI), format-valid rate, instability, deltas."""
    rows: list[list[Cell]] = []
    for fam in result.families:
        for name in fam.task_names:
            for label, var in fam.variants.items():
                if name in var.tasks:
                    rows.append(_row(fam.name, label, var.tasks[name]))
    if not rows:
        return None
    return Table(
        "capability",
        f"Capability control: accuracy and repeat instability per task, and the paired "
        f"change against base{simulated_suffix(result)}",
        (
            Column("family"),
            Column("variant"),
            Column("task"),
            Column("items"),
            Column("accuracy", "accuracy (%)", 1, se="accuracy_se"),
            Column("accuracy_se", decimals=1),
            Column("accuracy_lo", "95% CI low", 1),
            Column("accuracy_hi", "95% CI high", 1),
            Column("format_valid_rate", "format-valid (%)", 1),
            Column("non_unanimity", "non-unanimity (%)", 1, se="non_unanimity_se"),
            Column("non_unanimity_se", decimals=1),
            Column("mean_gini", "mean Gini", 3, se="gini_se"),
            Column("gini_se", decimals=3),
            Column("shared_items", "shared items"),
            *_delta_columns(),
        ),
        rows,
        note=(
            "Accuracy over every row (an unparsed reply counts wrong), ± its two-level "
            "bootstrap SE (items, stratified by subject, and repetitions); 95% CI = accuracy "
            "± 1.96 SE. Format-valid: parsed replies / replies. Non-unanimity: share of items "
            "whose repetitions do not all give the same answer; mean Gini: mean over items of "
            "1 − Σ share², over items with at least two parsed answers. Δ: variant − base over "
            "the shared items, with the 2.5 and 97.5 percentiles of paired bootstrap draws; "
            "significant: the interval excludes 0."
        ),
    )


def _instability_cells(value: Instability | dict[str, Any] | None) -> list[Cell]:
    if value is None:
        return [math.nan] * 5
    d = value.to_dict() if isinstance(value, Instability) else value
    return [
        100 * float(d["non_unanimity_rate"]),
        float(d["mean_gini"]),
        float(d["mean_gini_norm"]),
        int(d["n_cells"]),
        float(d["mean_reps"]),
    ]


def instability_table(result: StudyResult) -> Table | None:
    """Per family and variant: repeat instability of the questionnaire and of every task."""
    rows: list[list[Cell]] = []
    name = questionnaire_label(result.instrument)
    for fam in result.families:
        if not fam.task_names:
            continue
        for label, var in fam.variants.items():
            for role, value in var.instability.items():
                conditioning = "persona" if role == "persona" else "none"
                rows.append([fam.name, label, name, conditioning, *_instability_cells(value)])
            for task in var.tasks.values():
                rows.append(
                    [
                        fam.name,
                        label,
                        task_label(task.name),
                        "none",
                        *_instability_cells(task.instability),
                    ]
                )
    if not rows:
        return None
    return Table(
        "instability",
        "Repeat instability across instruments: do identical repetitions agree?"
        + simulated_suffix(result),
        (
            Column("family"),
            Column("variant"),
            Column("instrument"),
            Column("conditioning"),
            Column("non_unanimity_rate", "non-unanimity (%)", 1),
            Column("mean_gini", "mean Gini", 3),
            Column("mean_gini_norm", "mean Gini / (1 − 1/k)", 3),
            Column("n_cells", "cells"),
            Column("mean_reps", "mean repetitions", 2),
        ),
        rows,
        note=(
            "Cells: (persona, item) pairs of the questionnaire (conditioning none: items of "
            "the self-mode source), items of a task; a cell counts with at least two answers. "
            "Mean Gini / (1 − 1/k) divides by the largest impurity k possible answers allow "
            "(the scale's values; A-D for MMLU), so instruments compare on one scale; n/a for "
            "free answers (GSM8K) and for logprob sources (no repetitions)."
        ),
    )

"""The capability control's figure: task accuracy with 95% CIs, and instability across instruments.

Three panels, bars per variant: accuracy (percent, 95% CI = accuracy ± 1.96
SE) per family and task; non-unanimity (percent of cells whose repetitions
disagree) and the normalised mean Gini impurity (dimensionless, 0 to 1) per
family and instrument: the questionnaire in persona and self mode, then
every task. A missing bar is a value that does not exist (no self source);
an instrument with free answers (GSM8K) has no normalised Gini and is left
out of that panel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.axes import Axes

from ..stats import Instability
from ._canvas import Drawn, bar_offsets, finished, legend_of, new_figure
from ._results import FamilyResult, StudyResult, VariantResult
from ._style import variant_bars
from ._task_results import Z95, questionnaire_label, task_label

Group = tuple[FamilyResult, str]
Value = Callable[[VariantResult, str], tuple[float, float, float] | None]
"""A bar's value and its error bar's low and high ends (None: no bar)."""


def _accuracy(var: VariantResult, task: str) -> tuple[float, float, float] | None:
    found = var.tasks.get(task)
    if found is None:
        return None
    lo, hi = found.accuracy_ci
    return 100 * found.accuracy, 100 * lo, 100 * hi


def _instability(var: VariantResult, key: str) -> dict[str, float] | None:
    """Instability of one instrument key: ``persona``/``self`` (questionnaire) or a task name."""
    value = var.instability.get(key) if key in ("persona", "self") else None
    if isinstance(value, Instability):
        return {k: float(v) for k, v in value.to_dict().items()}
    task = var.tasks.get(key)
    return None if task is None else {k: float(v) for k, v in task.instability.items()}


def _measure(name: str, scale: float) -> Value:
    def value(var: VariantResult, key: str) -> tuple[float, float, float] | None:
        found = _instability(var, key)
        if found is None or math.isnan(found[name]):
            return None
        return scale * found[name], math.nan, math.nan

    return value


def _bars(ax: Axes, groups: Sequence[Group], labels: Sequence[str], value: Value) -> None:
    """Bars per group (x) and variant, with error bars where a value carries an interval."""
    offsets, bar_width = bar_offsets(len(labels))
    for offset, label in zip(offsets, labels, strict=True):
        x, y, err = [], [], []
        for i, (fam, key) in enumerate(groups):
            var = fam.variants.get(label)
            got = None if var is None else value(var, key)
            if got is None:
                continue
            x.append(i + offset)
            y.append(got[0])
            err.append((got[0] - got[1], got[2] - got[0]))
        if not x:
            continue
        yerr = np.asarray(err, dtype=np.float64).T
        ax.bar(
            x,
            y,
            bar_width,
            yerr=None if np.isnan(yerr).all() else yerr,
            capsize=2,
            **variant_bars(label, labels),
            label=label,
        )


def _names(result: StudyResult, groups: Sequence[Group], what: Callable[[str], str]) -> list[str]:
    many = len(result.families) > 1
    return [f"{fam.name}\n{what(key)}" if many else what(key) for fam, key in groups]


def fig_capability(result: StudyResult) -> Drawn | None:
    """The capability control's figure (None when no family gives a task)."""
    fams = [f for f in result.families if f.task_names]
    if not fams:
        return None
    labels = result.labels
    tasks: list[Group] = [(f, t) for f in fams for t in f.task_names]
    keys = ("persona", "self")
    instruments: list[Group] = [
        (f, k)
        for f in fams
        for k in (*keys, *f.task_names)
        if any(_instability(v, k) is not None for v in f.variants.values())
    ]
    normed: list[Group] = [
        (f, k)
        for f, k in instruments
        if any(_measure("mean_gini_norm", 1.0)(v, k) is not None for v in f.variants.values())
    ]
    quest = questionnaire_label(result.instrument)

    def instrument_name(key: str) -> str:
        return f"{quest}\n{key}" if key in keys else task_label(key)

    fig = new_figure(max(4.0 + 1.1 * len(instruments), 9.0), 3.6)
    ratios = (len(tasks), len(instruments), max(len(normed), 1))
    axes = fig.subplots(1, 3, width_ratios=ratios)
    _bars(axes[0], tasks, labels, _accuracy)
    axes[0].set(ylabel="accuracy (%)", ylim=(0, 100), title="Task accuracy (95% CI)")
    _bars(axes[1], instruments, labels, _measure("non_unanimity_rate", 100.0))
    axes[1].set(ylabel="non-unanimous cells (%)", title="Non-unanimity")
    _bars(axes[2], normed, labels, _measure("mean_gini_norm", 1.0))
    axes[2].set(ylabel="mean Gini / (1 − 1/k)", title="Normalised Gini impurity")
    for ax, groups, what in (
        (axes[0], tasks, task_label),
        (axes[1], instruments, instrument_name),
        (axes[2], normed, instrument_name),
    ):
        ax.set_xticks(np.arange(len(groups)), _names(result, groups, what), fontsize=7)
    legend_of(fig, axes[0])
    return finished(
        fig,
        "capability",
        "Capability control: task accuracy and repeat instability across instruments",
        "Left: accuracy per task over every reply (an unparsed reply counts wrong), with its "
        f"95% interval (± {Z95:.2f} bootstrap SE). Middle: share of cells whose identical "
        f"repetitions do not all agree ({quest} persona: (persona, item) cells; self and "
        "tasks: items). Right: mean Gini impurity divided by its maximum 1 − 1/k (k possible "
        "answers), left out for free numeric answers (GSM8K). A fall in R that comes with steady "
        "task accuracy points to persona-specific change rather than broad degradation.",
        result.simulated,
    )

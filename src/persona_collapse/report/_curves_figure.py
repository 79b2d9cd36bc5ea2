"""The temperature-curves figure of ``persona-collapse curves -o`` (S(T) and R(T) with SE bars).

matplotlib's object API on the Agg canvas (no pyplot, no global state), in the
report's style.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ..analysis import spread_description
from ._style import write_png_pdf

__all__ = ["curves_figure", "write_curves_figure"]


def write_curves_figure(curves: Sequence[dict[str, Any]], path: Path) -> list[Path]:
    """S(T) and R(T) with SE bars, one line per source; writes PNG and PDF, returns the paths.

    ``curves``: documents of :func:`persona_collapse.analysis.temperature_curves`
    (temperature T dimensionless; R = 1 / sigma_bar in inverse scale points).
    ``path``: ``FIG.png``, ``FIG.pdf`` or ``FIG``; both ``FIG.png`` and
    ``FIG.pdf`` are written (150 dpi). The title says which cell spread is shown.
    """
    return write_png_pdf(lambda: curves_figure(curves), path)


def curves_figure(curves: Sequence[dict[str, Any]]) -> Figure:
    """The figure :func:`write_curves_figure` writes; its title names the cell spread
    (population SD of each distribution, or expected SD of n sampled repetitions)."""
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax_s, ax_r = fig.subplots(1, 2)
    for doc in curves:
        t = [p["temperature"] for p in doc["points"]]
        for ax, key in ((ax_s, "S"), (ax_r, "R")):
            ax.errorbar(
                t,
                [p[key] for p in doc["points"]],
                yerr=[p[f"{key}_se"] for p in doc["points"]],
                marker="o",
                capsize=3,
                label=doc["source"],
            )
    first = curves[0]
    how = spread_description(first.get("spread", "population"), first.get("expected_reps"))
    ax_s.set(xlabel="temperature T", ylabel="S(T)", title="susceptibility S")
    ax_r.set(xlabel="temperature T", ylabel="R(T) = 1 / sigma_bar", title="robustness R")
    fig.suptitle(f"cell spread: {how}", fontsize="medium")
    ax_s.legend(fontsize="small")
    return fig

"""The trajectory figure: S and R with SE bands against training step, and the top-1 share.

Drawn from the JSON document of ``trajectory``
(:meth:`persona_collapse.analysis.Trajectory.to_dict`), so the command line and
the report draw the same figure from the same numbers. Matplotlib's object
API on the Agg canvas: no pyplot, no global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..analysis import SATURATION_SHARE
from ._canvas import new_figure
from ._style import OKABE_ITO, write_png_pdf


def _band(ax: Axes, steps: Sequence[int], values: np.ndarray, ses: np.ndarray, colour: str) -> None:
    ax.fill_between(steps, values - ses, values + ses, color=colour, alpha=0.2, linewidth=0)


def _series(points: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if p.get(key) is None else p[key] for p in points], dtype=np.float64)


def trajectory_figure(doc: dict[str, Any]) -> Figure:
    """Three panels sharing the step axis: S (and the corrected S*) with a ±1 SE band,
    R with a ±1 SE band, and the share of answers on the most used rating with the
    saturation threshold. Saturated checkpoints whose S fell from an earlier peak
    (``ceiling_fall``) are circled in every panel."""
    points = doc["points"]
    steps = [p["step"] for p in points]
    fig = new_figure(6.4, 6.6)
    ax_s, ax_r, ax_u = fig.subplots(3, 1, sharex=True)
    blue, vermillion, green = OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"]

    S, S_se = _series(points, "S"), _series(points, "S_se")
    _band(ax_s, steps, S, S_se, blue)
    ax_s.plot(steps, S, marker="o", color=blue, label="S ± SE")
    ax_s.plot(
        steps,
        _series(points, "S_corrected"),
        marker=".",
        ls="--",
        color=green,
        label="S* (no floor)",
    )
    ax_s.set(ylabel="S", title="susceptibility S")

    R, R_se = _series(points, "R"), _series(points, "R_se")
    _band(ax_r, steps, R, R_se, vermillion)
    ax_r.plot(steps, R, marker="o", color=vermillion, ls="--", label="R ± SE")
    ax_r.set(ylabel="R = 1 / sigma_bar", title="robustness R")

    usage = [p.get("scale_usage") or {} for p in points]
    top1 = np.array([u.get("top1_share", np.nan) for u in usage], dtype=np.float64)
    ax_u.plot(steps, top1, marker="s", color=OKABE_ITO["black"], label="top-1 share")
    ax_u.axhline(SATURATION_SHARE, color=OKABE_ITO["orange"], ls=":", label="saturation")
    ax_u.set(
        xlabel="training step",
        ylabel="share on top rating",
        title="scale usage",
        ylim=(0.0, 1.0),
    )
    ax_u.legend(loc="best")

    flagged = [i for i, p in enumerate(points) if p.get("ceiling_fall")]
    for ax, values in ((ax_s, S), (ax_r, R), (ax_u, top1)):
        if flagged:
            ax.scatter(
                [steps[i] for i in flagged],
                values[flagged],
                s=160,
                facecolors="none",
                edgecolors=OKABE_ITO["vermillion"],
                linewidths=1.5,
                zorder=5,
                label="S fell under saturation" if ax is ax_s else None,
            )
    ax_s.legend(loc="best")
    return fig


def write_trajectory_figure(doc: dict[str, Any], path: Path) -> list[Path]:
    """Write :func:`trajectory_figure` as ``FIG.png`` and ``FIG.pdf`` (150 dpi); returns the paths.

    ``path``: ``FIG.png``, ``FIG.pdf`` or ``FIG``.
    """
    return write_png_pdf(lambda: trajectory_figure(doc), path)

"""A drawn report figure before it is saved, a new figure on the Agg canvas (no pyplot), and
the finishing touches every report figure shares (legend below the panels, titled Drawn)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._style import titled


@dataclass(frozen=True)
class Drawn:
    """A figure of the report: its file stem, title, caption and the matplotlib figure."""

    name: str
    title: str
    caption: str
    figure: Figure


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure of ``width`` x ``height`` inches on its own Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def bar_offsets(n: int) -> tuple[list[float], float]:
    """Where ``n`` bars side by side in one x group go: each bar's x offset from the group's
    centre, and the width to draw every bar with (x axis units, groups 1 apart).

    The group spans 0.8; each bar gets a slot of ``0.8 / n`` (``0.8`` for ``n`` 0), centred
    on its offset, and is drawn at 92% of its slot so neighbours stay apart.
    """
    width = 0.8 / max(n, 1)
    return [(j - (n - 1) / 2) * width for j in range(n)], width * 0.92


def panel_grid(
    n: int, max_cols: int, panel: tuple[float, float], min_width: float, bottom: float
) -> tuple[Figure, list[Axes]]:
    """A figure of ``n`` panels in rows of at most ``max_cols``, and those ``n`` panels.

    Sizes in inches: each panel ``panel`` (width, height); the figure 0.6 wider (at least
    ``min_width``) and ``bottom`` taller, for labels, titles and the legend. Grid cells past
    ``n`` are hidden.
    """
    ncols = min(n, max_cols)
    nrows = int(np.ceil(n / ncols))
    fig = new_figure(max(panel[0] * ncols + 0.6, min_width), panel[1] * nrows + bottom)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def legend_of(fig: Figure, ax: Axes) -> None:
    """The legend of ``ax``'s labelled artists, in one row below every panel of ``fig``."""
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=len(names), frameon=False)


def finished(fig: Figure, name: str, title: str, caption: str, simulated: bool) -> Drawn:
    """``fig`` as the report figure ``name``: ``title`` (with the SIMULATED tag in front when
    ``simulated``) as its suptitle; the Drawn keeps the untagged title and the caption."""
    fig.suptitle(titled(title, simulated))
    return Drawn(name, title, caption, fig)

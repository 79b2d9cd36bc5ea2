"""A drawn report figure before it is saved, and a new figure on the Agg canvas (no pyplot)."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


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

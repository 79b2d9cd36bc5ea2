"""One figure style for the report: Okabe-Ito colours (colour-blind safe), line styles per variant."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
from cycler import cycler
from matplotlib.figure import Figure

from ..protocol import BASE, INSECURE, SECURE

#: Okabe & Ito (2008) palette, safe for the common colour-vision deficiencies.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

_FIXED = {
    BASE: OKABE_ITO["blue"],
    SECURE: OKABE_ITO["bluish_green"],
    INSECURE: OKABE_ITO["vermillion"],
}
_EXTRA = ("orange", "reddish_purple", "sky_blue", "black", "yellow")
_LINESTYLES = {BASE: "-", INSECURE: "--", SECURE: ":"}
_HATCHES = {BASE: "", SECURE: "..", INSECURE: "//"}

BAND_COLOUR = "#BBBBBB"
HEATMAP_CMAP = "cividis"
"""Perceptually uniform and readable with colour-vision deficiencies."""

SIMULATED_TAG = "SIMULATED data"

RC: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.prop_cycle": cycler(color=[OKABE_ITO[k] for k in ("blue", "vermillion", *_EXTRA)]),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "pdf.fonttype": 42,
    "svg.fonttype": "none",
    "errorbar.capsize": 2.5,
    # Labels come from users (family, variant and source names): draw ``$`` and backslashes
    # literally instead of parsing them as mathtext (``$\\frac{1}{$`` would not parse).
    "text.parse_math": False,
}


def variant_colour(label: str, labels: Sequence[str]) -> str:
    """The colour of a variant: base blue, secure green, insecure vermillion, others in turn."""
    if label in _FIXED:
        return _FIXED[label]
    others = [lb for lb in labels if lb not in _FIXED]
    i = others.index(label) if label in others else 0
    return OKABE_ITO[_EXTRA[i % len(_EXTRA)]]


def variant_linestyle(label: str) -> str:
    """Base solid, insecure dashed, secure dotted, any other variant dash-dotted."""
    return _LINESTYLES.get(label, "-.")


def variant_hatch(label: str) -> str:
    """A bar hatch per variant, so bars differ without colour too."""
    return _HATCHES.get(label, "xx")


def variant_bars(label: str, labels: Sequence[str]) -> dict[str, Any]:
    """The look of a variant's bars in every bar chart: its colour and hatch, white edges."""
    return {
        "color": variant_colour(label, labels),
        "hatch": variant_hatch(label),
        "edgecolor": "white",
        "linewidth": 0.5,
    }


@contextmanager
def report_style() -> Iterator[None]:
    """Apply the report's matplotlib settings inside the block only."""
    # matplotlib types rc keys as Literal names; RC holds valid ones (checked when applied).
    with mpl.rc_context(cast(Any, RC)):
        yield


def titled(text: str, simulated: bool) -> str:
    """A title, with the SIMULATED label in front when the data are simulated.

    Long titles are wrapped so narrow figures never clip them.
    """
    full = f"[{SIMULATED_TAG}] {text}" if simulated else text
    return "\n".join(textwrap.wrap(full, width=60))


def save_png_pdf(fig: Figure, base: Path) -> tuple[Path, Path]:
    """Save ``fig`` as ``BASE.png`` and ``BASE.pdf`` (inside :func:`report_style`: 150 dpi).

    The layout computed for the PNG is kept for the PDF (figure-relative positions),
    and the PDF carries no creation date, so the same figure gives the same bytes.
    """
    png, pdf = base.with_name(base.name + ".png"), base.with_name(base.name + ".pdf")
    base.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, format="png")
    fig.set_layout_engine("none")
    fig.savefig(pdf, format="pdf", metadata={"CreationDate": None})
    return png, pdf


def write_png_pdf(draw: Callable[[], Figure], path: Path) -> list[Path]:
    """Draw a figure with the report's style and write it as ``FIG.png`` and ``FIG.pdf``;
    ``path`` is ``FIG.png``, ``FIG.pdf`` or ``FIG``. Returns both paths."""
    base = path.with_suffix("") if path.suffix.lower() in (".png", ".pdf") else path
    with report_style():
        return list(save_png_pdf(draw(), base))

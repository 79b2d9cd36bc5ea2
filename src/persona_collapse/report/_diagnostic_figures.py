"""The report's diagnostic figures: scale usage per variant, and each family's trajectory.

Scale usage shows whether S can be read at all: once one rating holds most
answers (the saturation threshold), S is bounded by the scale. The trajectory
figure is the one ``persona-collapse trajectory -o`` draws, from the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes

from ..analysis import SATURATION_SHARE, is_saturated
from ._canvas import Drawn, bar_offsets, finished, legend_of, panel_grid
from ._results import FamilyResult, StudyResult, VariantResult
from ._style import OKABE_ITO, variant_bars
from ._trajectory_figure import trajectory_figure


def _usage_line(label: str, var: VariantResult) -> str:
    """``insecure: 75% on 5, 1.03 bits, KL 0.78 bits (saturated)`` for a panel's legend box."""
    u = var.usage
    text = f"{label}: {u.top1_share:.0%} on {u.top1_rating}, {u.entropy_bits:.2f} bits"
    if var.kl_bits is not None:
        text += f", KL {var.kl_bits:.2f}"
    return text + (" (saturated)" if is_saturated(u) else "")


def share_bars(
    ax: Axes,
    values: npt.NDArray[Any],
    labels: Sequence[str],
    fam: FamilyResult,
    share: Callable[[VariantResult], npt.ArrayLike],
) -> list[tuple[str, VariantResult]]:
    """Side by side per rating in ``values``, a bar per variant of ``fam`` (in ``labels``
    order): ``share`` of its answers on that rating, in percent. Titled with the family, rating
    ticks, y label; returns the variants drawn, as ``(label, variant)``."""
    offsets, bar_width = bar_offsets(len(labels))
    drawn: list[tuple[str, VariantResult]] = []
    for offset, label in zip(offsets, labels, strict=True):
        var = fam.variants.get(label)
        if var is None:
            continue
        ax.bar(
            values + offset,
            share(var),
            bar_width,
            **variant_bars(label, labels),
            label=label,
        )
        drawn.append((label, var))
    ax.set(xticks=values, title=fam.name, ylabel="share of answers (%)")
    return drawn


def fig_scale_usage(result: StudyResult) -> Drawn:
    """Per family: the share of answers on each rating per variant, and the saturation line."""
    values = np.asarray(result.instrument.scale.values)
    fig, axes = panel_grid(len(result.families), 3, (3.6, 3.0), 5.6, 0.9)

    def share(var: VariantResult) -> list[float]:
        shares = dict(zip(var.usage.values, var.usage.shares, strict=True))
        return [100 * shares.get(int(v), np.nan) for v in values]

    for ax, fam in zip(axes, result.families, strict=True):
        drawn = share_bars(ax, values, result.labels, fam, share)
        lines = [_usage_line(label, var) for label, var in drawn]
        ax.axhline(
            100 * SATURATION_SHARE,
            color=OKABE_ITO["orange"],
            ls=":",
            lw=1.2,
            label=f"saturation ({SATURATION_SHARE:.0%} on one rating)",
        )
        ax.text(
            0.02, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize=7
        )
        # head room above 100% keeps the text box clear of the bars
        ax.set(ylim=(0, 100 + 6 * len(lines)), xlabel="rating")
        ax.set_yticks(np.arange(0, 101, 20))
    legend_of(fig, axes[0])
    return finished(
        fig,
        "scale_usage",
        "Scale usage: where the answers sit on the scale",
        "Share of valid persona-mode answers on each rating per variant (expected shares for "
        "logprob runs); in each panel the top-1 share and its rating, the entropy in bits and "
        "the KL divergence from the base. Dotted: the saturation threshold "
        f"({SATURATION_SHARE:.0%} on one rating), above which S is bounded by the scale and a "
        "fall in S may be the ceiling rather than recovery.",
        result.simulated,
    )


def fig_trajectories(result: StudyResult, slugs: dict[str, str]) -> Sequence[Drawn]:
    """The trajectory figure of every family whose study lists checkpoints."""
    out: list[Drawn] = []
    for fam in result.families:
        if fam.trajectory is None:
            continue
        out.append(
            finished(
                trajectory_figure(fam.trajectory.to_dict()),
                f"trajectory_{slugs[fam.name]}",
                f"{fam.name}: S, R and scale usage over training steps",
                f"{fam.name}: S (and S* without its noise floor) and R with ±1 SE bands against "
                "the training step, and the share of answers on the most used rating against "
                "the saturation threshold. Circled: a saturated checkpoint whose S fell from an "
                "earlier peak (the ceiling, not necessarily recovery).",
                result.simulated,
            )
        )
    return out

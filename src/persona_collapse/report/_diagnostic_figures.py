"""The report's diagnostic figures: scale usage per variant, and each family's trajectory.

Scale usage shows whether S can be read at all: once one rating holds most
answers (the saturation threshold), S is bounded by the scale. The trajectory
figure is the one ``persona-collapse trajectory -o`` draws, from the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..analysis import SATURATION_SHARE, is_saturated
from ._canvas import Drawn, new_figure
from ._results import StudyResult, VariantResult
from ._style import OKABE_ITO, titled, variant_colour, variant_hatch
from ._trajectory_figure import trajectory_figure


def _usage_line(label: str, var: VariantResult) -> str:
    """``insecure: 75% on 5, 1.03 bits, KL 0.78 bits (saturated)`` for a panel's legend box."""
    u = var.usage
    text = f"{label}: {u.top1_share:.0%} on {u.top1_rating}, {u.entropy_bits:.2f} bits"
    if var.kl_bits is not None:
        text += f", KL {var.kl_bits:.2f}"
    return text + (" (saturated)" if is_saturated(u) else "")


def fig_scale_usage(result: StudyResult) -> Drawn:
    """Per family: the share of answers on each rating per variant, and the saturation line."""
    labels = result.labels
    fams = result.families
    values = np.asarray(result.instrument.scale.values)
    ncols = min(len(fams), 3)
    nrows = int(np.ceil(len(fams) / ncols))
    fig = new_figure(max(3.6 * ncols + 0.6, 5.6), 3.0 * nrows + 0.9)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    width = 0.8 / max(len(labels), 1)
    for ax, fam in zip(axes, fams, strict=False):
        lines: list[str] = []
        for j, label in enumerate(labels):
            var = fam.variants.get(label)
            if var is None:
                continue
            shares = dict(zip(var.usage.values, var.usage.shares, strict=True))
            ax.bar(
                values + (j - (len(labels) - 1) / 2) * width,
                [100 * shares.get(int(v), np.nan) for v in values],
                width * 0.92,
                color=variant_colour(label, labels),
                hatch=variant_hatch(label),
                edgecolor="white",
                linewidth=0.5,
                label=label,
            )
            lines.append(_usage_line(label, var))
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
        ax.set(xticks=values, ylim=(0, 100 + 6 * len(lines)), title=fam.name, xlabel="rating")
        ax.set_yticks(np.arange(0, 101, 20))
        ax.set_ylabel("share of answers (%)")
    for ax in axes[len(fams) :]:
        ax.set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=len(names), frameon=False)
    title = "Scale usage: where the answers sit on the scale"
    fig.suptitle(titled(title, result.simulated))
    return Drawn(
        "scale_usage",
        title,
        "Share of valid persona-mode answers on each rating per variant (expected shares for "
        "logprob runs); in each panel the top-1 share and its rating, the entropy in bits and "
        "the KL divergence from the base. Dotted: the saturation threshold "
        f"({SATURATION_SHARE:.0%} on one rating), above which S is bounded by the scale and a "
        "fall in S may be the ceiling rather than recovery.",
        fig,
    )


def fig_trajectories(result: StudyResult, slugs: dict[str, str]) -> Sequence[Drawn]:
    """The trajectory figure of every family whose study lists checkpoints."""
    out: list[Drawn] = []
    for fam in result.families:
        if fam.trajectory is None:
            continue
        fig = trajectory_figure(fam.trajectory.to_dict())
        title = f"{fam.name}: S, R and scale usage over training steps"
        fig.suptitle(titled(title, result.simulated))
        out.append(
            Drawn(
                f"trajectory_{slugs[fam.name]}",
                title,
                f"{fam.name}: S (and S* without its noise floor) and R with ±1 SE bands against "
                "the training step, and the share of answers on the most used rating against "
                "the saturation threshold. Circled: a saturated checkpoint whose S fell from an "
                "earlier peak (the ceiling, not necessarily recovery).",
                fig,
            )
        )
    return out

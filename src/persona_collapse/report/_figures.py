"""The report's figures (matplotlib, object API on the Agg canvas: no pyplot, no global state).

Every figure is saved as PNG and PDF under ``figures/``. Titles carry the
SIMULATED label when any data in them is simulated.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.projections.polar import PolarAxes

from ..protocol import BASE
from ..stats import OVERALL, Band, Profile, published_band
from ._canvas import Drawn as _Drawn
from ._canvas import bar_offsets as _bar_offsets
from ._canvas import finished as _finished
from ._canvas import new_figure as _new_figure
from ._canvas import panel_grid as _panel_grid
from ._capability_figure import fig_capability
from ._diagnostic_figures import fig_scale_usage, fig_trajectories, share_bars
from ._results import FamilyResult, StudyResult
from ._style import (
    BAND_COLOUR,
    HEATMAP_CMAP,
    report_style,
    save_png_pdf,
    variant_bars,
    variant_colour,
    variant_hatch,
    variant_linestyle,
)

ValueFn = Callable[[FamilyResult, str], tuple[float, float] | None]


@dataclass(frozen=True)
class FigureFile:
    """A written figure: its stem, caption and the PNG and PDF paths."""

    name: str
    title: str
    caption: str
    png: Path
    pdf: Path


def slug(text: str) -> str:
    """A file-name-safe form of a label (``GPT-4o`` -> ``gpt-4o``)."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "x"


def unique_slugs(names: Sequence[str]) -> dict[str, str]:
    """A distinct file-name-safe form of every name.

    A name keeps its plain :func:`slug` when no other name shares it; names that
    differ only by case or punctuation (``GPT-4o``, ``gpt 4o``) get the slug plus
    a short hash of the exact name, so each gets its own file.
    """
    plain = {name: slug(name) for name in dict.fromkeys(names)}
    taken = Counter(plain.values())
    return {
        name: s if taken[s] == 1 else f"{s}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        for name, s in plain.items()
    }


def _grouped_bars(
    ax: Axes, families: Sequence[FamilyResult], labels: Sequence[str], value: ValueFn
) -> None:
    """Bars per family (x groups) and variant (bars), with SE error bars."""
    offsets, bar_width = _bar_offsets(len(labels))
    x = np.arange(len(families), dtype=np.float64)
    for offset, label in zip(offsets, labels, strict=True):
        got = [value(f, label) for f in families]
        vals = np.array([g[0] if g else np.nan for g in got])
        ses = np.array([g[1] if g else np.nan for g in got])
        ax.bar(
            x + offset,
            vals,
            bar_width,
            yerr=ses,
            **variant_bars(label, labels),
            label=label,
            error_kw={"elinewidth": 0.9, "ecolor": "#333333"},
        )
    ax.set_xticks(x, [f.name for f in families])
    ax.set_xlim(-0.6, len(families) - 0.4)


def _metric(metric: str) -> ValueFn:
    def value(fam: FamilyResult, label: str) -> tuple[float, float] | None:
        var = fam.variants.get(label)
        if var is None:
            return None
        v = var.measurement.values(OVERALL)
        return (getattr(v, metric), getattr(v, f"{metric}_se"))

    return value


def _delta(metric: str, group: str = OVERALL) -> ValueFn:
    def value(fam: FamilyResult, label: str) -> tuple[float, float] | None:
        var = fam.variants.get(label)
        if var is None or var.change is None:
            return None
        d, se = var.change.at(group)
        return (d[metric], se[metric])

    return value


def _legend_below(fig: Figure, labels: Sequence[str], extra: Sequence[Patch] = ()) -> None:
    handles = [
        Patch(
            facecolor=variant_colour(lb, labels),
            hatch=variant_hatch(lb),
            edgecolor="white",
            label=lb,
        )
        for lb in labels
    ]
    fig.legend(
        handles=[*handles, *extra],
        loc="outside lower center",
        ncols=min(len(handles) + len(extra), 6),
        frameon=False,
    )


def fig_s_and_r(result: StudyResult, band: Band) -> _Drawn:
    labels = result.labels
    fams = result.families
    fig = _new_figure(max(6.5, 1.6 * len(fams) + 3), 3.4)
    ax_s, ax_r = fig.subplots(1, 2)
    ax_s.axhspan(band.S_min, band.S_max, color=BAND_COLOUR, alpha=0.45, lw=0, zorder=0)
    _grouped_bars(ax_s, fams, labels, _metric("S"))
    _grouped_bars(ax_r, fams, labels, _metric("R"))
    ax_s.set_title("Moral susceptibility S")
    ax_s.set_ylabel("S (rating points)")
    ax_r.set_title("Moral robustness R = 1/σ̄")
    ax_r.set_ylabel("R (1 / rating points)")
    band_patch = Patch(
        facecolor=BAND_COLOUR,
        alpha=0.45,
        label=f"published band S ∈ [{band.S_min:.2f}, {band.S_max:.2f}]",
    )
    _legend_below(fig, labels, [band_patch])
    return _finished(
        fig,
        "s_and_r",
        "S and R per variant (± SE)",
        "Susceptibility S (left) and robustness R (right) per variant, with bootstrap SEs. "
        f"Grey: the band of frontier base models (S in [{band.S_min:.2f}, {band.S_max:.2f}]).",
        result.simulated,
    )


def _zero_line(ax: Axes) -> None:
    ax.axhline(0.0, color="#333333", lw=0.8, zorder=1)


def _change_bars(
    result: StudyResult, width: tuple[float, float, float], panels: Sequence[tuple[str, str]]
) -> Figure:
    """Per ``(metric, name)`` of ``panels``, side by side: grouped bars of each variant's
    change against base in percent (± SE) with a zero line; the variants' legend below.

    ``width`` in inches: at least ``width[0]``, else ``width[1]`` per family plus ``width[2]``.
    Several panels are titled ``NAME against base``; a lone one goes by the figure's title.
    """
    labels = [lb for lb in result.labels if lb != BASE]
    fams = result.families
    fig = _new_figure(max(width[0], width[1] * len(fams) + width[2]), 3.3)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (metric, name) in zip(axes, panels, strict=True):
        _grouped_bars(ax, fams, labels, _delta(metric))
        _zero_line(ax)
        if len(panels) > 1:
            ax.set_title(f"{name} against base")
        ax.set_ylabel(f"{name} (%)")
    _legend_below(fig, labels)
    return fig


def fig_relative_change(result: StudyResult) -> _Drawn:
    """ΔS and ΔR against base, percent (± SE)."""
    return _finished(
        _change_bars(result, (6.5, 1.4, 3.0), (("S", "ΔS"), ("R", "ΔR"))),
        "relative_change",
        "Relative change of S and R against base (± SE)",
        "ΔX = (X − X_base) / X_base in percent for susceptibility (left) and robustness "
        "(right), with bootstrap SEs of the difference.",
        result.simulated,
    )


def fig_sigma_change(result: StudyResult) -> _Drawn:
    """Δσ̄ against base, percent (± SE)."""
    return _finished(
        _change_bars(result, (5.0, 1.2, 2.5), (("sigma_bar", "Δσ̄"),)),
        "sigma_bar_change",
        "Change of the within-persona spread σ̄ against base (± SE)",
        "Δσ̄ in percent: how much more (or less) a variant's answers vary between "
        "repetitions of the same persona and item.",
        result.simulated,
    )


def fig_foundation_changes(result: StudyResult) -> _Drawn:
    labels = [lb for lb in result.labels if lb != BASE]
    fams = result.families
    subscales = result.instrument.subscales
    fig = _new_figure(8.0, 0.6 + 2.3 * len(fams))
    axes = np.atleast_2d(fig.subplots(len(fams), 2, squeeze=False))
    x = np.arange(len(subscales), dtype=np.float64)
    offsets, bar_width = _bar_offsets(len(labels))
    for row, fam in enumerate(fams):
        for col, (metric, name) in enumerate((("S", "ΔS"), ("sigma_bar", "Δσ̄"))):
            ax: Axes = axes[row, col]
            for offset, label in zip(offsets, labels, strict=True):
                var = fam.variants.get(label)
                if var is None or var.change is None:
                    continue
                pairs = [var.change.at(g) for g in subscales]
                ax.bar(
                    x + offset,
                    [d[metric] for d, _ in pairs],
                    bar_width,
                    yerr=[se[metric] for _, se in pairs],
                    **variant_bars(label, labels),
                    error_kw={"elinewidth": 0.9, "ecolor": "#333333"},
                )
            _zero_line(ax)
            ax.set_xticks(x, list(subscales))
            ax.set_ylabel(f"{name} (%)")
            ax.set_title(f"{fam.name}: {name} per foundation", fontsize=9)
    _legend_below(fig, labels)
    return _finished(
        fig,
        "foundation_changes",
        "Per-foundation change of S and σ̄ (± SE)",
        "Relative change of susceptibility (left) and within-persona spread (right) for each "
        "moral foundation, with bootstrap SEs.",
        result.simulated,
    )


def _radar(
    result: StudyResult, which: str, pick: Callable[[FamilyResult, str], Profile | None]
) -> _Drawn | None:
    fams = [f for f in result.families if any(pick(f, lb) for lb in f.variants)]
    if not fams:
        return None
    labels = result.labels
    subscales = result.instrument.subscales
    scale = result.instrument.scale
    theta = np.linspace(0, 2 * np.pi, len(subscales), endpoint=False)
    closed = np.append(theta, theta[0])
    ncols = min(len(fams), 4)
    nrows = int(np.ceil(len(fams) / ncols))
    fig = _new_figure(max(3.0 * ncols + 0.4, 5.2), 3.1 * nrows + 0.8)
    for k, fam in enumerate(fams):
        ax = fig.add_subplot(nrows, ncols, k + 1, projection="polar")
        assert isinstance(ax, PolarAxes)
        ax.set_theta_offset(np.pi / 2)
        ax.set_theta_direction(-1)
        for label in labels:
            profile = pick(fam, label)
            if profile is None:
                continue
            mean = np.array([profile[f].mean for f in subscales])
            sd = np.array([profile[f].sd for f in subscales])
            colour = variant_colour(label, labels)
            ax.plot(
                closed,
                np.append(mean, mean[0]),
                color=colour,
                lw=1.6,
                ls=variant_linestyle(label),
                label=label,
            )
            lo = np.clip(mean - sd, scale.low, scale.high)
            hi = np.clip(mean + sd, scale.low, scale.high)
            ax.fill_between(
                closed, np.append(lo, lo[0]), np.append(hi, hi[0]), color=colour, alpha=0.15, lw=0
            )
        ax.set_xticks(theta, list(subscales))
        ax.set_ylim(scale.low, scale.high)
        ax.set_yticks(np.arange(scale.low, scale.high + 1))
        ax.tick_params(axis="x", labelsize=7, pad=1)
        ax.tick_params(axis="y", labelsize=6)
        ax.grid(True, alpha=0.4)
        ax.set_title(fam.name, pad=14)
    present = [lb for lb in labels if any(pick(f, lb) for f in fams)]
    handles: list[Artist] = [
        Line2D([], [], color=variant_colour(lb, labels), ls=variant_linestyle(lb), lw=1.6, label=lb)
        for lb in present
    ]
    handles.append(Patch(facecolor="#999999", alpha=0.3, label="± SD"))
    fig.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 4), frameon=False
    )
    if which == "self":
        title = "Self profile without a persona (mean ± SD)"
        caption = (
            "Unconditioned answers per moral foundation: mean of the item means, shaded ± mean "
            "item SD over repetitions. Base solid, insecure dashed, secure dotted."
        )
    else:
        title = "Toxic-persona profile (mean ± SD across personas)"
        caption = (
            "Answers under toxic personas: per persona the mean rating per foundation, then "
            "mean (line) ± SD across personas (shaded). Base solid, insecure dashed, secure dotted."
        )
    return _finished(fig, f"{which}_profile_radar", title, caption, result.simulated)


def fig_heatmap(result: StudyResult, fam: FamilyResult, file_slug: str | None = None) -> _Drawn:
    labels = [lb for lb in result.labels if lb in fam.variants]
    inst = result.instrument
    scale = inst.scale
    fig = _new_figure(2.9 * len(labels) + 1.0, 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(labels), squeeze=False)[0])
    image = None
    for ax, label in zip(axes, labels, strict=True):
        cells = fam.variants[label].cells
        sub = inst.subscale_index()[np.searchsorted(inst.item_ids, cells.item_ids)]
        order = np.argsort(sub, kind="stable")
        image = ax.imshow(
            cells.means[:, order],
            vmin=scale.low,
            vmax=scale.high,
            cmap=HEATMAP_CMAP,
            aspect="auto",
            interpolation="nearest",
        )
        sorted_sub = sub[order]
        edges = np.flatnonzero(np.diff(sorted_sub)) + 0.5
        for e in edges:
            ax.axvline(e, color="white", lw=0.8)
        groups = np.unique(sorted_sub)
        centres = [float(np.mean(np.flatnonzero(sorted_sub == g))) for g in groups]
        ax.set_xticks(centres, [inst.subscales[g] for g in groups])
        ax.set_title(label)
        ax.set_xlabel("items (by foundation)")
        ax.grid(False)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
    axes[0].set_ylabel(f"persona ({fam.variants[labels[0]].cells.means.shape[0]} in all)")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="cell mean rating", shrink=0.9)
    return _finished(
        fig,
        f"heatmap_{file_slug or slug(fam.name)}",
        f"{fam.name}: cell means per persona and item",
        f"{fam.name}: mean rating of every (persona, item) cell, items grouped by foundation. "
        "Rows that differ from each other mean personas are played differently (high S); "
        "uniform columns mean the persona barely matters.",
        fam.simulated or result.study.simulated,
    )


def fig_answers(result: StudyResult) -> _Drawn:
    """Per family: the share of answers (percent) on each scale value, a bar per variant."""
    values = np.asarray(result.instrument.scale.values)
    fig, axes = _panel_grid(len(result.families), 4, (2.7, 2.5), 5.2, 0.8)
    for ax, fam in zip(axes, result.families, strict=True):
        share_bars(ax, values, result.labels, fam, lambda var: var.cells.answer_share * 100)
        ax.set_xlabel("answer")
    _legend_below(fig, result.labels)
    return _finished(
        fig,
        "answer_distribution",
        f"Distribution of answers over {values[0]}..{values[-1]}",
        "Share of valid persona-mode answers on each scale value (expected shares for logprob "
        "runs).",
        result.simulated,
    )


def draw_figures(result: StudyResult, band: Band | None = None) -> list[_Drawn]:
    """Every figure of the report, in report order (the radars only where profiles exist)."""
    band = band or published_band()
    with report_style():
        drawn: list[_Drawn | None] = [fig_s_and_r(result, band)]
        if any(len(f.variants) > 1 for f in result.families):
            drawn += [
                fig_relative_change(result),
                fig_sigma_change(result),
                fig_foundation_changes(result),
            ]
        drawn += [
            _radar(result, "self", lambda f, lb: _profile(f, lb, "self")),
            _radar(result, "toxic", lambda f, lb: _profile(f, lb, "toxic")),
        ]
        slugs = unique_slugs([fam.name for fam in result.families])
        drawn += [fig_heatmap(result, fam, slugs[fam.name]) for fam in result.families]
        drawn += [fig_answers(result), fig_scale_usage(result)]
        drawn += fig_trajectories(result, slugs)
        drawn.append(fig_capability(result))
    return [d for d in drawn if d is not None]


def _profile(fam: FamilyResult, label: str, which: str) -> Profile | None:
    var = fam.variants.get(label)
    if var is None:
        return None
    return var.self_profile if which == "self" else var.toxic_profile


def write_figures(result: StudyResult, folder: Path, band: Band | None = None) -> list[FigureFile]:
    """Draw and save every figure as ``NAME.png`` and ``NAME.pdf`` under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[FigureFile] = []
    with report_style():
        for d in draw_figures(result, band):
            png, pdf = save_png_pdf(d.figure, folder / d.name)
            out.append(FigureFile(d.name, d.title, d.caption, png, pdf))
    return out

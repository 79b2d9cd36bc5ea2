"""The report's diagnostic tables: scale usage per variant, and each family's trajectory.

Shares are fractions of the valid persona-mode answers (expected shares for
logprob runs); entropies and KL divergences are in bits.
"""

from __future__ import annotations

import math

from ..analysis import SATURATION_SHARE, is_saturated
from ._results import StudyResult
from ._table_formats import Cell, Column, Table, metric_columns, simulated_suffix


def _scale_values(result: StudyResult) -> tuple[int, ...]:
    return tuple(int(v) for v in result.instrument.scale.values)


def scale_usage_table(result: StudyResult) -> Table:
    """Per variant: the share of answers on each rating, entropy, top-1 share, KL from base."""
    values = _scale_values(result)
    rows: list[list[Cell]] = []
    for fam in result.families:
        for label, var in fam.variants.items():
            u = var.usage
            shares = dict(zip(u.values, (float(s) for s in u.shares), strict=True))
            rows.append(
                [
                    fam.name,
                    label,
                    *(shares.get(v, math.nan) for v in values),
                    u.entropy_bits,
                    u.top1_share,
                    u.top1_rating,
                    u.endpoint_mass,
                    is_saturated(u),
                    math.nan if var.kl_bits is None else var.kl_bits,
                ]
            )
    return Table(
        "scale_usage",
        f"Scale usage: share of persona-mode answers on each rating{simulated_suffix(result)}",
        (
            Column("family"),
            Column("variant"),
            *(Column(f"share_{v}", f"{v}", 3) for v in values),
            Column("entropy_bits", "entropy (bits)"),
            Column("top1_share", "top-1 share", 3),
            Column("top1_rating", "top-1 rating"),
            Column("endpoint_mass", "endpoint mass", 3),
            Column("saturated"),
            Column("kl_bits", "KL from base (bits)", 3),
        ),
        rows,
        note=(
            f"Saturated: one rating holds at least {SATURATION_SHARE:.0%} of the answers, so S "
            "is bounded by the scale and a fall in S may be the ceiling rather than recovery. "
            "Endpoint mass: share of the two ends of the scale. KL: D(variant ‖ base) over every "
            "rating with add-one smoothing (docs/diagnostics.md)."
        ),
    )


def trajectory_table(result: StudyResult) -> Table | None:
    """Per family and checkpoint: S, S*, the floor, σ̄ and R (± SE) and the top-1 share."""
    rows: list[list[Cell]] = []
    for fam in result.families:
        if fam.trajectory is None:
            continue
        for point in fam.trajectory.points:
            doc = point.document
            rows.append(
                [
                    fam.name,
                    point.step,
                    point.label,
                    point.measurement.n_personas,
                    *(
                        doc[k]
                        for k in (
                            "S",
                            "S_se",
                            "S_corrected",
                            "S_corrected_se",
                            "S_noise_floor",
                            "sigma_bar",
                            "sigma_bar_se",
                            "R",
                            "R_se",
                        )
                    ),
                    point.usage.top1_share,
                    point.usage.top1_rating,
                    point.usage.entropy_bits,
                    point.saturated,
                    point.ceiling_fall,
                ]
            )
    if not rows:
        return None
    return Table(
        "trajectory",
        f"Trajectory over training steps (± SE){simulated_suffix(result)}",
        (
            Column("family"),
            Column("step"),
            Column("source"),
            Column("personas"),
            *metric_columns(),
            Column("top1_share", "top-1 share", 3),
            Column("top1_rating", "top-1 rating"),
            Column("entropy_bits", "entropy (bits)"),
            Column("saturated"),
            Column("ceiling_fall", "fell under saturation"),
        ),
        rows,
        note=(
            "Each checkpoint measured as metrics measures a source. Fell under saturation: a "
            "saturated checkpoint whose S lies below an earlier peak by more than one SE of the "
            "difference; the fall may be the ceiling crushing the effect, not recovery."
        ),
    )

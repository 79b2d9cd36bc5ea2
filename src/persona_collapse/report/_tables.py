"""The report's tables, built from an analysed study (numbers as in the paper: two decimals,
relative changes in percent with one decimal)."""

from __future__ import annotations

import math
from collections.abc import Iterator

from ..analysis import COMPLIANCE_KEYS
from ..stats import METRICS, OVERALL, Band, Change, Measurement, published_band
from ._capability_tables import capability_table, instability_table
from ._diagnostic_tables import scale_usage_table, trajectory_table
from ._results import StudyResult, VariantResult
from ._table_formats import Cell, Column, Table, metric_columns, simulated_suffix

_METRIC_HEADINGS = {"S": "S", "sigma_bar": "σ̄", "R": "R"}


def _delta_columns(prefix: str = "d", unit: str = "%") -> tuple[Column, ...]:
    cols: list[Column] = []
    for m in METRICS:
        name = f"{prefix}{m}"
        cols.append(
            Column(name, f"Δ{_METRIC_HEADINGS[m]} ({unit})", 1, True, se=f"{name}_se"),
        )
        cols.append(Column(f"{name}_se", decimals=1))
    return tuple(cols)


def _metric_cells(meas: Measurement, group: str = OVERALL) -> list[Cell]:
    """The cells of :func:`metric_columns` for one group of a measurement."""
    v = meas.values(group)
    noise = meas.noise_values(group)
    return [
        v.S,
        v.S_se,
        noise["S_corrected"],
        noise["S_corrected_se"],
        noise["S_noise_floor"],
        v.sigma_bar,
        v.sigma_bar_se,
        v.R,
        v.R_se,
    ]


_NOISE_NOTE = (
    "S*: S without the spread repetition noise alone gives (per item sqrt(max(0, S_q² − F_q²)), "
    "F_q the noise floor; docs/diagnostics.md), ± its bootstrap SE; noise floor: mean F_q."
)


def metrics_table(result: StudyResult, band: Band) -> Table:
    rows: list[list[Cell]] = []
    for fam in result.families:
        base_S = fam.base.measurement.values(OVERALL).S
        for label, var in fam.variants.items():
            v = var.measurement.values(OVERALL)
            left = None if var is fam.base else band.left(base_S, v.S)
            rows.append(
                [
                    fam.name,
                    label,
                    var.measurement.n_personas,
                    *_metric_cells(var.measurement),
                    band.outside(v.S),
                    left,
                    *(var.compliance.to_dict()[k] for k in COMPLIANCE_KEYS),
                ]
            )
    return Table(
        "metrics",
        "Moral susceptibility S, mean within-persona SD σ̄ and robustness R (± SE)"
        + simulated_suffix(result),
        (
            Column("family"),
            Column("variant"),
            Column("personas"),
            *metric_columns(),
            Column("outside_band", "outside band"),
            Column("left_band", "left band"),
            Column("digit_mass", "digit mass"),
            Column("truncated_share", "cut off by top-k", 3),
            Column("nondigit_attempt_share", "non-digit attempts", 3),
            Column("fallback_share", "fallback", 3),
            Column("missing_share", "missing", 3),
        ),
        rows,
        note=(
            f"Band: S in [{band.S_min:.2f}, {band.S_max:.2f}] spanned by "
            f"{sum(m.in_band for m in band.models)} frontier base models "
            f"({band.source.split(':')[0]}). Outside band: the published absolute test; "
            "left band: the base inside the band and the variant outside. Compliance: "
            "digit mass = mean first-token probability on the scale digits (logprobs), "
            "cut off by top-k = share of cells with a digit outside the returned top-k, "
            "non-digit attempts and fallback = sampled runs, missing = slots without a "
            f"rating; n/a: not applicable or not recorded. {_NOISE_NOTE}"
        ),
    )


def foundation_metrics_table(result: StudyResult) -> Table:
    rows: list[list[Cell]] = []
    for fam in result.families:
        for label, var in fam.variants.items():
            for group in var.measurement.subscales:
                rows.append([fam.name, label, group, *_metric_cells(var.measurement, group)])
    return Table(
        "metrics_by_foundation",
        f"S, S*, σ̄ and R per moral foundation (± SE){simulated_suffix(result)}",
        (Column("family"), Column("variant"), Column("foundation"), *metric_columns()),
        rows,
        note=_NOISE_NOTE,
    )


def _corrected(change: Change, group: str = OVERALL) -> tuple[float, float]:
    """``(ΔS*, SE)`` in percent; NaN when the change carries no corrected S."""
    got = change.corrected_at(group)
    return got if got is not None else (math.nan, math.nan)


def _with_se(values: dict[str, float], ses: dict[str, float]) -> list[float]:
    """Each metric's value then its SE, in :data:`METRICS` order (a delta table's cells)."""
    return [x for m in METRICS for x in (values[m], ses[m])]


def _changed(result: StudyResult) -> Iterator[tuple[str, str, VariantResult, Change]]:
    """``(family, label, variant, change)`` of every variant compared with its base, in order."""
    for fam in result.families:
        for label, var in fam.variants.items():
            if var.change is not None:
                yield fam.name, label, var, var.change


def changes_table(result: StudyResult) -> Table:
    rows: list[list[Cell]] = []
    for family, label, var, change in _changed(result):
        kl = math.nan if var.kl_bits is None else var.kl_bits
        rows.append([family, label, *_with_se(*change.at(OVERALL)), *_corrected(change), kl])
    return Table(
        "changes",
        "Relative change against base, ΔX = (X − X_base) / X_base, in percent (± SE)"
        + simulated_suffix(result),
        (
            Column("family"),
            Column("variant"),
            *_delta_columns(),
            Column("dS_corrected", "ΔS* (%)", 1, True, se="dS_corrected_se"),
            Column("dS_corrected_se", decimals=1),
            Column("kl_bits", "KL from base (bits)", 3),
        ),
        rows,
        note=(
            "ΔS*: the change of S without its noise floor. KL from base: D(variant ‖ base) of "
            "the pooled rating distributions in bits, over every rating with add-one smoothing "
            "(docs/diagnostics.md)."
        ),
    )


def foundation_changes_table(result: StudyResult) -> Table:
    rows: list[list[Cell]] = []
    for family, label, var, change in _changed(result):
        for group in var.measurement.subscales:
            rows.append([family, label, group, *_with_se(*change.at(group))])
    return Table(
        "changes_by_foundation",
        "Relative change against base per moral foundation, percent (± SE)"
        + simulated_suffix(result),
        (Column("family"), Column("variant"), Column("foundation"), *_delta_columns()),
        rows,
    )


def excess_table(result: StudyResult) -> Table | None:
    rows: list[list[Cell]] = []
    for fam in result.families:
        excess = fam.excess
        if excess is None:
            continue
        for group in excess.groups:
            rows.append([fam.name, group, *_with_se(*excess.at(group))])
    if not rows:
        return None
    return Table(
        "excess",
        "Misalignment-specific excess ΔX(insecure) − ΔX(secure), percentage points (± SE)"
        + simulated_suffix(result),
        (Column("family"), Column("foundation"), *_delta_columns("excess_", "pp")),
        rows,
    )


def summary_table(result: StudyResult) -> Table | None:
    summary = result.summary
    if summary is None:
        return None
    rows: list[list[Cell]] = []
    for label, means in summary.mean_delta_pct.items():
        top_family, top_value = summary.max_delta_pct[label]["sigma_bar"]
        rows.append(
            [
                label,
                means["S"],
                means["sigma_bar"],
                means["R"],
                top_value,
                top_family,
                summary.mean_cv["S"].get(label, math.nan),
                summary.mean_cv["sigma_bar"].get(label, math.nan),
            ]
        )
    n = len(result.families)
    note = f"Plain means over {n} {'family' if n == 1 else 'families'}."
    if summary.mean_excess_pp is not None:
        e = summary.mean_excess_pp
        note += (
            " Mean excess insecure − secure: "
            f"ΔS {e['S']:+.1f} pp, Δσ̄ {e['sigma_bar']:+.1f} pp, ΔR {e['R']:+.1f} pp."
        )
    return Table(
        "summary",
        f"Mean relative change over families, percent{simulated_suffix(result)}",
        (
            Column("variant"),
            Column("mean_dS", "mean ΔS (%)", 1, True),
            Column("mean_dsigma_bar", "mean Δσ̄ (%)", 1, True),
            Column("mean_dR", "mean ΔR (%)", 1, True),
            Column("max_dsigma_bar", "max Δσ̄ (%)", 1, True),
            Column("max_dsigma_bar_family", "max at"),
            Column("cv_S", "CV of S over foundations"),
            Column("cv_sigma_bar", "CV of σ̄ over foundations"),
        ),
        rows,
        note=note,
    )


def _profile_table(result: StudyResult, which: str) -> Table | None:
    subscales = result.instrument.subscales
    rows: list[list[Cell]] = []
    for fam in result.families:
        for label, var in fam.variants.items():
            profile = var.self_profile if which == "self" else var.toxic_profile
            if profile is None:
                continue
            rows.append(
                [
                    fam.name,
                    label,
                    *(x for f in subscales for x in (profile[f].mean, profile[f].sd)),
                ]
            )
    if not rows:
        return None
    cols = [Column("family"), Column("variant")]
    for f in subscales:
        cols += [Column(f, se=f"{f}_sd"), Column(f"{f}_sd")]
    if which == "self":
        caption = "Self profile (no persona): mean ± SD per foundation"
        note = "Per foundation: mean of its item means ± mean of its item SDs over repetitions."
    else:
        caption = "Toxic-persona profile: mean ± SD across personas per foundation"
        note = (
            "Per persona the mean rating per foundation; then mean ± SD (ddof 1) across personas."
        )
    return Table(
        f"{which}_profiles", caption + simulated_suffix(result), tuple(cols), rows, note=note
    )


def failures_table(result: StudyResult) -> Table:
    rows: list[list[Cell]] = [
        [s.family, s.variant, s.role, s.label, s.rows, s.mean_failures, s.missing_share]
        for s in result.sources
    ]
    return Table(
        "failures",
        f"Failure statistics per response set{simulated_suffix(result)}",
        (
            Column("family"),
            Column("variant"),
            Column("role"),
            Column("source"),
            Column("rows"),
            Column("mean_failures", "mean failures per answer"),
            Column("missing_share", "share missing (rating −1)", 4),
        ),
        rows,
        note="Failures count unparseable attempts before an answer; n/a where the source records none.",
    )


def provenance_table(result: StudyResult) -> Table:
    rows: list[list[Cell]] = [
        [
            s.family,
            s.variant,
            s.role,
            s.label,
            "SIMULATED" if s.simulated else "",
            s.model,
            s.backend,
            s.method,
            s.settings,
            s.persona_set_hash,
            s.protocol_hash,
            s.tool_version,
            s.created,
            s.file_name,
            s.sha256,
        ]
        for s in result.sources
    ]
    return Table(
        "provenance",
        "Provenance of every response set",
        tuple(
            Column(n)
            for n in (
                "family",
                "variant",
                "role",
                "source",
                "data",
                "model",
                "backend",
                "method",
                "settings",
                "persona_set_hash",
                "protocol_hash",
                "tool_version",
                "created",
                "file",
                "sha256",
            )
        ),
        rows,
        note="Published CSV files carry no run record: their file name and sha256 identify them.",
    )


def report_tables(result: StudyResult, band: Band | None = None) -> list[Table]:
    """Every table of the report, in report order (absent ones left out)."""
    band = band or published_band()
    tables: list[Table | None] = [
        metrics_table(result, band),
        changes_table(result),
        excess_table(result),
        summary_table(result),
        scale_usage_table(result),
        trajectory_table(result),
        capability_table(result),
        instability_table(result),
        foundation_metrics_table(result),
        foundation_changes_table(result),
        _profile_table(result, "self"),
        _profile_table(result, "toxic"),
        failures_table(result),
        provenance_table(result),
    ]
    return [t for t in tables if t is not None and t.rows]

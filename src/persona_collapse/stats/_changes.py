"""Comparing variants with their base: relative changes, misalignment excess, family summaries.

Uncertainty on every difference comes from the bootstrap replicates of both
measurements: each replicate of a relative change is formed from the
replicates with the same index (paired by persona id: both sides resampled
on the same persona ids, see ``_bootstrap`` and ``relative_change(paired=...)``),
separately for the persona
and the repetition bootstraps, and the two SDs are combined in quadrature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..protocol import BASE, INSECURE, SECURE, VARIANT_LABELS
from ._bootstrap import Draws
from ._cells import FloatArray
from ._estimators import OVERALL, Measurement

METRICS = ("S", "sigma_bar", "R")
CORRECTED = "S_corrected"
"""The corrected S* (noise floor removed); its change is carried beside :data:`METRICS`."""


def _quiet() -> np.errstate:
    """np.errstate for IEEE arithmetic that may meet 0 or inf (a replicate with sigma_bar = 0
    has R = inf): the NaN or infinite results are kept as they are, without a warning."""
    return np.errstate(divide="ignore", invalid="ignore")


def _metric(values_S: FloatArray, values_sigma: FloatArray, metric: str) -> FloatArray:
    if metric == "S":
        return values_S
    if metric == "sigma_bar":
        return values_sigma
    with _quiet():
        return np.asarray(1.0 / values_sigma)


def _pct_change(variant: FloatArray, base: FloatArray) -> FloatArray:
    """Percent change; NaN or infinite, without a warning, where ``base`` is 0 or infinite."""
    with _quiet():
        return np.asarray((variant / base - 1.0) * 100.0)


def _corrected_change(variant: FloatArray, base: FloatArray) -> FloatArray:
    """Percent change of S*; NaN or infinite, without a warning, where the base's S* is 0."""
    return _pct_change(variant, base)


@dataclass(frozen=True)
class Change:
    """Relative change (percent) of S, sigma_bar, R and S* per group, with replicates.

    ``value[metric]`` and the replicate arrays are indexed by ``groups``
    (``"all"`` then the subscales); replicates have shape ``(draws, groups)``.
    :meth:`at` gives :data:`METRICS`; :meth:`corrected_at` the change of the
    corrected S* (:data:`CORRECTED`), when both sides carry it.
    """

    groups: tuple[str, ...]
    value: dict[str, FloatArray]
    persona_draws: dict[str, FloatArray]
    repetition_draws: dict[str, FloatArray]

    def se(self, metric: str) -> FloatArray:
        var = np.zeros(len(self.groups))
        for draws in (self.persona_draws.get(metric), self.repetition_draws.get(metric)):
            if draws is not None and draws.shape[0] > 1:
                with _quiet():
                    var = var + np.var(draws, axis=0, ddof=1)
        return np.sqrt(var)

    def at(self, group: str = OVERALL) -> tuple[dict[str, float], dict[str, float]]:
        """``(delta, delta_se)`` dictionaries keyed by metric, for one group."""
        g = self.groups.index(group)
        return (
            {m: float(self.value[m][g]) for m in METRICS},
            {m: float(self.se(m)[g]) for m in METRICS},
        )

    def corrected_at(self, group: str = OVERALL) -> tuple[float, float] | None:
        """``(dS*, SE)`` in percent (or pp for an excess) for one group; None when not measured."""
        if CORRECTED not in self.value:
            return None
        g = self.groups.index(group)
        return float(self.value[CORRECTED][g]), float(self.se(CORRECTED)[g])

    def __sub__(self, other: Change) -> Change:
        """Difference of two changes in percentage points (e.g. insecure minus secure)."""
        with _quiet():
            value = {m: self.value[m] - other.value[m] for m in self.value if m in other.value}
        return Change(
            groups=self.groups,
            value=value,
            persona_draws=_paired(self.persona_draws, other.persona_draws, np.subtract),
            repetition_draws=_paired(self.repetition_draws, other.repetition_draws, np.subtract),
        )


def _paired(
    a: Mapping[str, FloatArray], b: Mapping[str, FloatArray], op: np.ufunc
) -> dict[str, FloatArray]:
    out = {}
    for m in a:
        if m in b:
            n = min(a[m].shape[0], b[m].shape[0])
            with _quiet():
                out[m] = np.asarray(op(a[m][:n], b[m][:n]))
    return out


def _draw_changes(variant: Draws | None, base: Draws | None) -> dict[str, FloatArray]:
    if variant is None or base is None:
        return {}
    n = min(variant.S.shape[0], base.S.shape[0])
    out = {
        m: _pct_change(
            _metric(variant.S[:n], variant.sigma_bar[:n], m),
            _metric(base.S[:n], base.sigma_bar[:n], m),
        )
        for m in METRICS
    }
    out[CORRECTED] = _corrected_change(variant.S_corrected[:n], base.S_corrected[:n])
    return out


def relative_change(
    base: Measurement,
    variant: Measurement,
    *,
    paired: tuple[Measurement, Measurement] | None = None,
) -> Change:
    """dX = (X_variant - X_base) / X_base in percent, for S, sigma_bar, R and the corrected S*.

    The persona replicates of the change pair the two sides replicate by
    replicate. That is a pairing by persona only when both were measured on
    the same persona ids; otherwise pass ``paired``: the (base, variant)
    measurements restricted to their shared persona ids (same seed, so every
    shared persona gets the same resample count on both sides), whose persona
    replicates are used instead. Values come from ``base`` and ``variant``.
    """
    if base.groups != variant.groups:
        raise ValueError("base and variant were measured on different subscales")
    return Change(
        groups=base.groups,
        value={
            m: _pct_change(
                _metric(variant.S, variant.sigma_bar, m), _metric(base.S, base.sigma_bar, m)
            )
            for m in METRICS
        }
        | {CORRECTED: _corrected_change(variant.S_corrected, base.S_corrected)},
        persona_draws=(
            _draw_changes(variant.persona_draws, base.persona_draws)
            if paired is None
            else _draw_changes(paired[1].persona_draws, paired[0].persona_draws)
        ),
        repetition_draws=_draw_changes(variant.repetition_draws, base.repetition_draws),
    )


def misalignment_excess(insecure: Change, secure: Change) -> Change:
    """dX(insecure) - dX(secure) in percentage points: the change beyond the matched control."""
    return insecure - secure


@dataclass(frozen=True)
class FamilySummary:
    """Plain averages over model families (as the paper's headline), percent / points."""

    mean_delta_pct: dict[str, dict[str, float]]
    """variant label -> metric -> mean relative change over families (overall)."""
    max_delta_pct: dict[str, dict[str, tuple[str, float]]]
    """variant label -> metric -> (family, largest relative change)."""
    mean_excess_pp: dict[str, float] | None
    """metric -> mean of dX(insecure) - dX(secure), when both are present in every family."""
    mean_cv: dict[str, dict[str, float]]
    """metric (S, sigma_bar) -> variant label -> mean coefficient of variation across subscales."""


def summarise_families(
    families: Mapping[str, Mapping[str, Measurement]], *, base_label: str = BASE
) -> FamilySummary:
    """Average relative changes, excess and subscale uniformity over families.

    ``families`` maps a family name to its variants' measurements, one of
    them labelled ``base_label``.
    """
    changes: dict[str, dict[str, Change]] = {}
    cvs: dict[str, dict[str, list[float]]] = {"S": {}, "sigma_bar": {}}
    for fam, variants in families.items():
        base = variants[base_label]
        for label, meas in variants.items():
            for metric, values in (("S", meas.S[1:]), ("sigma_bar", meas.sigma_bar[1:])):
                cvs[metric].setdefault(label, []).append(
                    float(np.std(values, ddof=0) / np.mean(values))
                )
            if label != base_label:
                changes.setdefault(label, {})[fam] = relative_change(base, meas)
    mean_delta = {
        label: {m: float(np.mean([c.value[m][0] for c in per.values()])) for m in METRICS}
        for label, per in changes.items()
    }
    max_delta = {
        label: {
            m: max(((fam, float(c.value[m][0])) for fam, c in per.items()), key=lambda t: t[1])
            for m in METRICS
        }
        for label, per in changes.items()
    }
    excess = None
    ins, sec = changes.get(INSECURE), changes.get(SECURE)
    if ins and sec and set(ins) == set(sec):
        excess = {
            m: float(np.mean([ins[f].value[m][0] - sec[f].value[m][0] for f in ins]))
            for m in METRICS
        }
    return FamilySummary(
        mean_delta_pct=mean_delta,
        max_delta_pct=max_delta,
        mean_excess_pp=excess,
        mean_cv={
            metric: {label: float(np.mean(v)) for label, v in per.items()}
            for metric, per in cvs.items()
        },
    )


def coefficient_of_variation_by_metric(meas: Measurement) -> dict[str, float]:
    """CV (population SD / mean) of the per-subscale S and sigma_bar values."""
    return {
        "S": float(np.std(meas.S[1:], ddof=0) / np.mean(meas.S[1:])),
        "sigma_bar": float(np.std(meas.sigma_bar[1:], ddof=0) / np.mean(meas.sigma_bar[1:])),
    }


def labels_in_order(labels: Sequence[str]) -> list[str]:
    """Variant labels with the conventional ones first: base, secure, insecure, then the rest."""
    known = list(VARIANT_LABELS)
    return [lb for lb in known if lb in labels] + [lb for lb in labels if lb not in known]

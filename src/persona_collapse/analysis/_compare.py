"""Comparing variants with a base: relative changes, the band, the misalignment excess and
how far each variant's use of the scale moved from the base's (KL divergence in bits)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import DataError
from ..protocol import INSECURE, SECURE
from ..stats import (
    OVERALL,
    Change,
    Instability,
    Measurement,
    ScaleUsage,
    misalignment_excess,
    published_band,
    relative_change,
)
from ..store import Responses
from ._diagnostics import scale_usage
from ._measure import measure_responses, metrics_document, source_warnings
from ._options import AnalysisOptions
from ._repeat_instability import repeat_instability

MIN_SHARED_PERSONAS = 2
"""A paired persona bootstrap needs at least this many persona ids on every side."""


@dataclass(frozen=True)
class Comparison:
    """A base measurement, each variant's measurement and change, and the misalignment excess."""

    base_label: str
    base: Measurement
    variants: dict[str, tuple[str, Measurement, Change]]
    paired_personas: int = 0
    """Persona ids shared by the base and every variant: the persona bootstrap resamples these."""
    left_out: dict[str, int] = field(default_factory=dict)
    """Per source (``base`` and each variant label): its personas outside the shared set."""
    warnings: tuple[str, ...] = ()
    """What a reader must know (few personas, incomplete runs, persona sets, the band)."""
    source_warnings: dict[str, list[str]] = field(default_factory=dict)
    """Per source (``base`` and each variant label): its own warnings, also in ``warnings``."""
    usage: dict[str, ScaleUsage] = field(default_factory=dict)
    """Per source (``base`` and each variant label): its scale usage."""
    instability: dict[str, Instability] = field(default_factory=dict)
    """Per sampled source (``base`` and each variant label): its repeat instability."""

    def kl_bits(self, label: str) -> float | None:
        """KL divergence in bits of variant ``label``'s pooled ratings from the base's.

        Over every scale value (MFQ-30: all six ratings 0..5) with add-one
        smoothing of the counts (:func:`persona_collapse.stats.kl_divergence_bits`);
        the authors' figure used ratings 1-5 only, so values differ from theirs.
        """
        if label not in self.usage or "base" not in self.usage:
            return None
        return self.usage[label].kl_from(self.usage["base"])

    @property
    def base_outside_band(self) -> bool:
        """Whether the base itself lies outside the published band (no variant can leave it)."""
        return published_band().outside(float(self.base.S[0]))

    @property
    def excess(self) -> Change | None:
        if INSECURE in self.variants and SECURE in self.variants:
            return misalignment_excess(self.variants[INSECURE][2], self.variants[SECURE][2])
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``compare`` (DESIGN.md), with per-subscale deltas added."""
        band = published_band()
        out: dict[str, Any] = {"base": self._metrics("base", self.base_label, self.base)}
        out["variants"] = {}
        base_S = float(self.base.S[0])
        for label, (source, meas, change) in self.variants.items():
            delta, delta_se = _deltas(change, OVERALL)
            out["variants"][label] = {
                "metrics": self._metrics(label, source, meas),
                "delta_pct": delta,
                "delta_pct_se": delta_se,
                "kl_bits": self.kl_bits(label),
                "outside_band": band.outside(float(meas.S[0])),
                "left_band": band.left(base_S, float(meas.S[0])),
                "personas_left_out": self.left_out.get(label, 0),
                "foundations": {
                    name: dict(
                        zip(("delta_pct", "delta_pct_se"), _deltas(change, name), strict=True)
                    )
                    for name in meas.subscales
                },
            }
        excess = self.excess
        if excess is not None:
            value, se = _deltas(excess, OVERALL)
            out["excess_pp"] = value
            out["excess_pp_se"] = se
        out["band"] = {
            "S_min": band.S_min,
            "S_max": band.S_max,
            "base_outside": band.outside(base_S),
        }
        out["pairing"] = {
            "personas": self.paired_personas,
            "left_out": {"base": self.left_out.get("base", 0)}
            | {label: self.left_out.get(label, 0) for label in self.variants},
        }
        out["warnings"] = list(self.warnings)
        return out

    def _metrics(self, key: str, label: str, meas: Measurement) -> dict[str, Any]:
        """The metrics document of one side, with its own warnings and scale usage."""
        doc = metrics_document(label, meas)
        if key in self.usage:
            doc["scale_usage"] = self.usage[key].to_dict()
        if key in self.instability:
            doc["instability"] = self.instability[key].to_dict()
        doc["warnings"] = list(self.source_warnings.get(key, []))
        return doc


def _deltas(change: Change, group: str) -> tuple[dict[str, float], dict[str, float]]:
    """``(delta, se)`` of S, sigma_bar, R and, where measured, the corrected S*."""
    delta, se = change.at(group)
    corrected = change.corrected_at(group)
    if corrected is not None:
        delta["S_corrected"], se["S_corrected"] = corrected
    return delta, se


def _restricted(responses: Responses, ids: npt.NDArray[np.int64]) -> Responses:
    frame = responses.frame
    return replace(responses, frame=frame[frame["persona_id"].isin(ids)])


def _band_warning(base_label: str, base: Measurement) -> list[str]:
    band = published_band()
    S = float(base.S[0])
    if not band.outside(S):
        return []
    return [
        f"base {base_label} is already outside the band (S = {S:.2f}, band "
        f"[{band.S_min:.2f}, {band.S_max:.2f}]): outside_band says where a variant lies, "
        "left_band (false for every variant here) whether it left the band"
    ]


def compare_responses(
    base: Responses,
    variants: Mapping[str, Responses],
    options: AnalysisOptions | None = None,
) -> Comparison:
    """Measure a base and its variants and the relative change of each.

    All are measured with the same persona-bootstrap seed and separate
    repetition streams. The persona bootstrap of every change (and of the
    excess) is paired by persona id: it resamples the persona ids shared by
    the base and every variant, each shared id with the same count on every
    side. When the persona sets differ, the personas outside the shared set
    are left out of the paired replicates only (the values use every persona)
    and the comparison says how many were left out.
    """
    opts = options or AnalysisOptions()
    base_meas = measure_responses(base, opts)
    measured: dict[str, tuple[Responses, Measurement]] = {}
    for stream, (label, resp) in enumerate(variants.items(), start=1):
        streamed = replace(opts, bootstrap=replace(opts.bootstrap, stream=stream))
        meas = measure_responses(resp, streamed)
        if meas.subscales != base_meas.subscales:
            raise DataError(f"{resp.label} and {base.label} use different instruments")
        measured[label] = (resp, meas)
    everyone = [base_meas, *(meas for _, meas in measured.values())]
    shared = everyone[0].persona_ids
    for meas in everyone[1:]:
        shared = np.intersect1d(shared, meas.persona_ids)
    same_sets = all(np.array_equal(m.persona_ids, shared) for m in everyone)
    if not same_sets and shared.size < MIN_SHARED_PERSONAS:
        raise DataError(
            f"{base.label} and its variants share {shared.size} persona ids; a comparison "
            "pairs personas by id, so measure the variants on the same persona set"
        )
    left_out = {"base": int(base_meas.n_personas - shared.size)} | {
        label: int(meas.n_personas - shared.size) for label, (_, meas) in measured.items()
    }
    persona_only = replace(opts, bootstrap=replace(opts.bootstrap, repetition_draws=0))
    paired_base = None if same_sets else measure_responses(_restricted(base, shared), persona_only)
    out: dict[str, tuple[str, Measurement, Change]] = {}
    for label, (resp, meas) in measured.items():
        paired = None
        if paired_base is not None:
            paired = (paired_base, measure_responses(_restricted(resp, shared), persona_only))
        out[label] = (resp.label, meas, relative_change(base_meas, meas, paired=paired))
    usage = {"base": scale_usage(base, opts)} | {
        label: scale_usage(resp, opts) for label, (resp, _) in measured.items()
    }
    per_source = {"base": source_warnings(base, base_meas, opts, usage=usage["base"])} | {
        label: source_warnings(resp, meas, opts, usage=usage[label])
        for label, (resp, meas) in measured.items()
    }
    sides = {"base": base} | {label: resp for label, (resp, _) in measured.items()}
    unstable = {key: repeat_instability(resp, opts) for key, resp in sides.items()}
    warnings = [w for ws in per_source.values() for w in ws]
    if not same_sets:
        counts = ", ".join(f"{name} {n}" for name, n in left_out.items() if n)
        warnings.append(
            f"different persona sets: the paired bootstrap uses the {shared.size} shared "
            f"persona ids and leaves out {counts}"
        )
    warnings += _band_warning(base.label, base_meas)
    return Comparison(
        base_label=base.label,
        base=base_meas,
        variants=out,
        paired_personas=int(shared.size),
        left_out=left_out,
        warnings=tuple(warnings),
        source_warnings=per_source,
        usage=usage,
        instability={key: value for key, value in unstable.items() if value is not None},
    )

"""Comparing variants with a base: relative changes, the band and the misalignment excess."""

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
    Measurement,
    misalignment_excess,
    published_band,
    relative_change,
)
from ..store import Responses
from ._measure import measure_responses, metrics_document, source_warnings
from ._options import AnalysisOptions

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
        out: dict[str, Any] = {"base": metrics_document(self.base_label, self.base), "variants": {}}
        out["base"]["warnings"] = list(self.source_warnings.get("base", []))
        base_S = float(self.base.S[0])
        for label, (source, meas, change) in self.variants.items():
            delta, delta_se = change.at(OVERALL)
            out["variants"][label] = {
                "metrics": metrics_document(source, meas)
                | {"warnings": list(self.source_warnings.get(label, []))},
                "delta_pct": delta,
                "delta_pct_se": delta_se,
                "outside_band": band.outside(float(meas.S[0])),
                "left_band": band.left(base_S, float(meas.S[0])),
                "personas_left_out": self.left_out.get(label, 0),
                "foundations": {
                    name: dict(zip(("delta_pct", "delta_pct_se"), change.at(name), strict=True))
                    for name in meas.subscales
                },
            }
        excess = self.excess
        if excess is not None:
            value, se = excess.at(OVERALL)
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
    per_source = {"base": source_warnings(base, base_meas)} | {
        label: source_warnings(resp, meas) for label, (resp, meas) in measured.items()
    }
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
    )

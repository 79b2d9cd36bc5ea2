"""Comparing variants with a base: relative changes, the band and the misalignment excess."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..errors import DataError
from ..stats import (
    OVERALL,
    Change,
    Measurement,
    misalignment_excess,
    published_band,
    relative_change,
)
from ..store import Responses
from ._measure import measure_responses, metrics_document
from ._options import AnalysisOptions


@dataclass(frozen=True)
class Comparison:
    """A base measurement, each variant's measurement and change, and the misalignment excess."""

    base_label: str
    base: Measurement
    variants: dict[str, tuple[str, Measurement, Change]]

    @property
    def excess(self) -> Change | None:
        if "insecure" in self.variants and "secure" in self.variants:
            return misalignment_excess(self.variants["insecure"][2], self.variants["secure"][2])
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``compare`` (DESIGN.md), with per-subscale deltas added."""
        band = published_band()
        out: dict[str, Any] = {"base": metrics_document(self.base_label, self.base), "variants": {}}
        for label, (source, meas, change) in self.variants.items():
            delta, delta_se = change.at(OVERALL)
            out["variants"][label] = {
                "metrics": metrics_document(source, meas),
                "delta_pct": delta,
                "delta_pct_se": delta_se,
                "outside_band": band.outside(float(meas.S[0])),
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
        out["band"] = {"S_min": band.S_min, "S_max": band.S_max}
        return out


def compare_responses(
    base: Responses,
    variants: Mapping[str, Responses],
    options: AnalysisOptions | None = None,
) -> Comparison:
    """Measure a base and its variants and the relative change of each.

    All are measured with the same persona-bootstrap seed (paired resampling
    when they share a persona set) and separate repetition streams.
    """
    opts = options or AnalysisOptions()
    base_meas = measure_responses(base, opts)
    out: dict[str, tuple[str, Measurement, Change]] = {}
    for stream, (label, resp) in enumerate(variants.items(), start=1):
        streamed = replace(opts, bootstrap=replace(opts.bootstrap, stream=stream))
        meas = measure_responses(resp, streamed)
        if meas.subscales != base_meas.subscales:
            raise DataError(f"{resp.label} and {base.label} use different instruments")
        out[label] = (resp.label, meas, relative_change(base_meas, meas))
    return Comparison(base_label=base.label, base=base_meas, variants=out)

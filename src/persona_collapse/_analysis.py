"""From loaded responses to measurements: the glue between the store and the estimators.

The command line and the report call these; they hold no I/O beyond what
:mod:`persona_collapse.store` loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError
from .instruments import Instrument, load_instrument
from .stats import (
    OVERALL,
    BootstrapConfig,
    Change,
    Measurement,
    Profile,
    RatingCube,
    measure,
    measure_distributions,
    misalignment_excess,
    persona_profile,
    published_band,
    relative_change,
    reweight_spellings,
    reweight_temperature,
    saturation,
    score_reversed,
    self_profile,
)
from .store import Responses


@dataclass(frozen=True)
class AnalysisOptions:
    """Options shared by ``metrics``, ``profile``, ``compare`` and ``report``.

    ``instrument``: overrides the instrument recorded with the source (CSV files
    carry none and default to MFQ-30). ``expected_reps``: for logprob runs, use
    the expected ddof = 1 SD of that many sampled repetitions as the cell spread
    instead of the exact population SD. ``temperature``: for logprob runs,
    re-weight the stored T = 1 distributions to this temperature first.
    """

    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    instrument: str | None = None
    expected_reps: int | None = None
    temperature: float | None = None


def instrument_for(responses: Responses, options: AnalysisOptions) -> Instrument:
    return load_instrument(options.instrument or responses.instrument or "mfq30")


def rating_cube(responses: Responses, instrument: Instrument) -> RatingCube:
    """The sampled ratings of a source as a cube over the instrument's items."""
    frame = responses.frame
    present = np.unique(frame["question_id"].to_numpy())
    unknown = np.setdiff1d(present, instrument.item_ids)
    if unknown.size:
        raise DataError(
            f"{responses.label}: item id {int(unknown[0])} is not an item of {instrument.name}; "
            "choose the matching --instrument"
        )
    items = instrument.item_ids[np.isin(instrument.item_ids, present)]
    return RatingCube.from_long(
        frame["persona_id"].to_numpy(),
        frame["question_id"].to_numpy(),
        frame["rating"].to_numpy(),
        items=items,
    )


def _positions(axis: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index in ``axis`` of every element of ``values`` (all of which occur in ``axis``)."""
    sorter = np.argsort(axis)
    return np.asarray(sorter[np.searchsorted(axis, values, sorter=sorter)], dtype=np.int64)


def _item_subscales(instrument: Instrument, item_ids: np.ndarray) -> np.ndarray:
    return instrument.subscale_index()[_positions(instrument.item_ids, item_ids)]


def _distribution_array(
    responses: Responses, instrument: Instrument, temperature: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored distributions as ``(personas, items, scale values)``, optionally at temperature T.

    Re-weighting uses the per-token spellings recorded with each cell (exact);
    cells stored without them (older runs, imported data) are re-weighted from
    the summed value mass, which is exact only when each value has one spelling.
    """
    frame = responses.frame
    has = frame["distribution"].map(lambda d: d is not None and len(d) > 0)
    frame = frame[has]
    if frame.empty:
        raise DataError(f"{responses.label}: a logprob run without stored distributions")
    personas = np.unique(frame["persona_id"].to_numpy())
    items = instrument.item_ids[np.isin(instrument.item_ids, frame["question_id"].to_numpy())]
    k = instrument.scale.size
    p_idx = np.searchsorted(personas, frame["persona_id"].to_numpy())
    q_idx = _positions(items, frame["question_id"].to_numpy())
    stored = np.array(frame["distribution"].tolist(), dtype=np.float64)
    if temperature is not None:
        stored = _reweighted(frame, stored, instrument, temperature)
    probs = np.full((personas.size, items.size, k), np.nan)
    probs[p_idx, q_idx] = stored
    complete = ~np.isnan(probs).any(axis=(1, 2))
    if not complete.any():
        raise DataError(f"{responses.label}: no persona has a distribution for every item")
    return probs[complete], personas[complete], items


def _reweighted(
    frame: pd.DataFrame, stored: np.ndarray, instrument: Instrument, temperature: float
) -> np.ndarray:
    out = reweight_temperature(stored, temperature)
    extras = frame["extra"] if "extra" in frame else pd.Series([None] * len(frame))
    spellings: list[tuple[int, list[list[float]]]] = [
        (row, e["spellings"])
        for row, e in enumerate(extras.tolist())
        if isinstance(e, dict) and e.get("spellings")
    ]
    if not spellings:
        return out
    rows = np.array([row for row, _ in spellings], dtype=np.int64)
    lengths = np.array([len(entries) for _, entries in spellings])
    flat = np.array([entry for _, entries in spellings for entry in entries], dtype=np.float64)
    cell = np.repeat(np.arange(rows.size), lengths)
    exact = reweight_spellings(
        cell,
        flat[:, 0].astype(np.int64) - instrument.scale.low,
        flat[:, 1],
        rows.size,
        instrument.scale.size,
        temperature,
    )
    out[rows] = exact
    return out


def measure_responses(responses: Responses, options: AnalysisOptions | None = None) -> Measurement:
    """S, sigma_bar and R (overall and per subscale) of one source, with bootstrap SEs."""
    opts = options or AnalysisOptions()
    instrument = instrument_for(responses, opts)
    if responses.method == "logprobs":
        probs, personas, items = _distribution_array(responses, instrument, opts.temperature)
        return measure_distributions(
            probs,
            instrument.scale.values,
            _item_subscales(instrument, items),
            instrument.subscales,
            persona_ids=personas,
            item_ids=items,
            n_repetitions=opts.expected_reps,
            config=opts.bootstrap,
        )
    cube = rating_cube(responses, instrument)
    return measure(
        cube, _item_subscales(instrument, cube.item_ids), instrument.subscales, opts.bootstrap
    )


def profile_responses(responses: Responses, options: AnalysisOptions | None = None) -> Profile:
    """Self profile of a no-persona source; across-persona profile (mean +- SD of persona means)
    of a persona source. Reverse-keyed items are scored reversed."""
    opts = options or AnalysisOptions()
    instrument = instrument_for(responses, opts)
    cube = rating_cube(responses, instrument)
    subs = _item_subscales(instrument, cube.item_ids)
    reverse = instrument.reverse_mask()[_positions(instrument.item_ids, cube.item_ids)]
    scored = RatingCube(
        ratings=score_reversed(cube.ratings, reverse, instrument.scale.low, instrument.scale.high),
        persona_ids=cube.persona_ids,
        item_ids=cube.item_ids,
        dropped_persona_ids=cube.dropped_persona_ids,
    )
    if responses.mode == "self":
        return self_profile(scored, subs, instrument.subscales)
    return persona_profile(scored, subs, instrument.subscales)


def profile_saturation(
    profile: Profile, responses: Responses, options: AnalysisOptions | None = None
) -> dict[str, float]:
    scale = instrument_for(responses, options or AnalysisOptions()).scale
    return saturation(profile, scale.low, scale.high)


def metrics_document(label: str, meas: Measurement) -> dict[str, Any]:
    """The JSON object of ``metrics`` for one source (DESIGN.md)."""
    doc: dict[str, Any] = {"source": label}
    doc.update(meas.to_dict())
    if meas.dropped_persona_ids.size:
        doc["dropped_personas"] = [int(p) for p in meas.dropped_persona_ids]
    return doc


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

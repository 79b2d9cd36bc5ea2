"""From loaded responses to measurements: S, sigma_bar and R, and profiles.

These hold no I/O beyond what :mod:`persona_collapse.store` loads; the
command line and the report call them.
"""

from __future__ import annotations

from typing import Any

from ..stats import (
    Measurement,
    Profile,
    RatingCube,
    measure,
    measure_distributions,
    persona_profile,
    saturation,
    score_reversed,
    self_profile,
)
from ..store import Responses
from ._cube import distribution_cube, item_positions, item_subscales, rating_cube
from ._options import AnalysisOptions, instrument_for


def measure_responses(responses: Responses, options: AnalysisOptions | None = None) -> Measurement:
    """S, sigma_bar and R (overall and per subscale) of one source, with bootstrap SEs.

    Logprob sources are measured from their distribution cube (re-weighted to
    ``options.reweight_temperature`` when set), sampled ones from their ratings.
    """
    opts = options or AnalysisOptions()
    instrument = instrument_for(responses, opts)
    if responses.method == "logprobs":
        cube = distribution_cube(responses, instrument, opts.reweight_temperature)
        return measure_distributions(
            cube.probs,
            instrument.scale.values,
            item_subscales(instrument, cube.item_ids),
            instrument.subscales,
            persona_ids=cube.persona_ids,
            item_ids=cube.item_ids,
            n_repetitions=opts.expected_reps,
            config=opts.bootstrap,
        )
    ratings = rating_cube(responses, instrument)
    return measure(
        ratings, item_subscales(instrument, ratings.item_ids), instrument.subscales, opts.bootstrap
    )


def profile_responses(responses: Responses, options: AnalysisOptions | None = None) -> Profile:
    """Self profile of a no-persona source; across-persona profile (mean +- SD of persona means)
    of a persona source. Reverse-keyed items are scored reversed."""
    opts = options or AnalysisOptions()
    instrument = instrument_for(responses, opts)
    cube = rating_cube(responses, instrument)
    subs = item_subscales(instrument, cube.item_ids)
    reverse = instrument.reverse_mask()[item_positions(instrument.item_ids, cube.item_ids)]
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
    """Per subscale, how close the profile sits to the ends of the instrument's scale."""
    scale = instrument_for(responses, options or AnalysisOptions()).scale
    return saturation(profile, scale.low, scale.high)


def metrics_document(label: str, meas: Measurement) -> dict[str, Any]:
    """The JSON object of ``metrics`` for one source (DESIGN.md)."""
    doc: dict[str, Any] = {"source": label}
    doc.update(meas.to_dict())
    if meas.dropped_persona_ids.size:
        doc["dropped_personas"] = [int(p) for p in meas.dropped_persona_ids]
    return doc

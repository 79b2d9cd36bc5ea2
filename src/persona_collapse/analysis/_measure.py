"""From loaded responses to measurements: S, sigma_bar and R, and profiles.

These hold no I/O beyond what :mod:`persona_collapse.store` loads; the
command line and the report call them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..protocol import MISSING_RATING
from ..stats import (
    Measurement,
    Profile,
    RatingCube,
    ScaleUsage,
    measure,
    measure_distributions,
    persona_profile,
    saturation,
    score_reversed,
    self_profile,
)
from ..store import Responses
from ._compliance import source_compliance
from ._cube import distribution_cube, item_positions, item_subscales, rating_cube
from ._diagnostics import noise_floor_warning, saturation_warning, scale_usage
from ._options import AnalysisOptions, instrument_for
from ._repeat_instability import repeat_instability


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


MIN_PERSONAS = 30
"""Fewer personas than this give a warning: S (an SD across personas) is then poorly determined."""


def slot_counts(responses: Responses) -> tuple[int, int]:
    """``(answered, planned)`` slots of a source.

    A slot is one (persona, item, repetition); it is answered when it holds a
    valid rating (sampled) or a distribution (logprobs). Planned slots are at
    least the rows present; with a run record, personas x items x repetitions
    asked for; without one (a file), personas x items present x the usual
    (modal) number of repetitions per cell, so cells short of it count as missing.
    """
    frame = responses.frame
    if frame.empty:
        return 0, 0
    if responses.method == "logprobs":
        answered = int(frame["distribution"].map(lambda d: d is not None and len(d) > 0).sum())
    else:
        ratings = frame["rating"].to_numpy(dtype=np.float64, na_value=np.nan)
        answered = int(np.sum(~np.isnan(ratings) & (ratings != MISSING_RATING)))
    personas = int(frame["persona_id"].nunique())
    items = int(frame["question_id"].nunique())
    per_cell = frame.groupby(["persona_id", "question_id"]).size().to_numpy()
    reps = int(np.bincount(per_cell).argmax())
    if responses.run is not None:
        settings = responses.run.settings
        if responses.mode == "persona" and int(settings.get("n_personas") or 0) > 0:
            personas = int(settings["n_personas"])
        if int(settings.get("reps") or 0) > 0:
            reps = int(settings["reps"])
        items = instrument_for(responses, AnalysisOptions()).n_items
    return answered, max(len(frame), personas * items * reps)


def source_warnings(
    responses: Responses,
    meas: Measurement | None = None,
    options: AnalysisOptions | None = None,
    *,
    usage: ScaleUsage | None = None,
) -> list[str]:
    """What a reader of one source's numbers must know: too few personas, an incomplete run,
    personas left out, poor compliance (:class:`Compliance`: little probability on the
    digits, many missing slots, digits cut off by the top-k), saturation (one rating holds
    most persona-conditioned answers) and, with ``meas``, S at its noise floor. Without
    ``meas``, personas are counted in the source itself. ``options`` says how the source
    was analysed (instrument, re-weighting temperature) for its scale usage; ``usage``
    is that :func:`scale_usage` when the caller already has it (computed here otherwise)."""
    out: list[str] = []
    n_personas = (
        meas.n_personas if meas is not None else int(responses.frame["persona_id"].nunique())
    )
    if responses.mode == "persona" and n_personas < MIN_PERSONAS:
        out.append(
            f"{responses.label}: only {n_personas} personas (fewer than {MIN_PERSONAS}); "
            "S and its SE are poorly determined"
        )
    answered, planned = slot_counts(responses)
    if answered < planned:
        advice = "resume the run to fill the rest" if responses.run else "the rest have no rating"
        out.append(
            f"{responses.label}: incomplete: {answered} of {planned} slots answered; {advice}"
        )
    if meas is not None and meas.dropped_persona_ids.size:
        out.append(
            f"{responses.label}: {meas.dropped_persona_ids.size} personas left out "
            "(an item without a valid rating)"
        )
    compliance_warning = source_compliance(responses).warning(responses.label)
    if compliance_warning is not None:
        out.append(compliance_warning)
    if responses.mode == "persona":
        if usage is None:
            usage = scale_usage(responses, options)
        saturated = saturation_warning(responses.label, usage)
        at_floor = None if meas is None else noise_floor_warning(responses.label, meas)
        out += [w for w in (saturated, at_floor) if w is not None]
    return out


def metrics_document(
    label: str,
    meas: Measurement,
    responses: Responses | None = None,
    options: AnalysisOptions | None = None,
    *,
    usage: ScaleUsage | None = None,
) -> dict[str, Any]:
    """The JSON object of ``metrics`` for one source (DESIGN.md), with its ``warnings``.

    Besides S, sigma_bar and R it carries ``S_corrected``, ``S_corrected_se`` and
    ``S_noise_floor``, overall and per foundation. ``warnings`` is a list of
    strings, empty when there is nothing to say; pass ``responses`` (analysed
    with ``options``) to include what only the source tells (an incomplete run,
    saturation, ``compliance``: the shares of :func:`source_compliance`, keys
    :data:`COMPLIANCE_KEYS` plus the counts behind them, and ``scale_usage``:
    :meth:`ScaleUsage.to_dict <persona_collapse.stats.ScaleUsage.to_dict>`, and, for
    sampled sources, ``instability``: :func:`repeat_instability` as a dict). ``usage``
    is that scale usage when the caller already has it (computed here otherwise).
    """
    doc: dict[str, Any] = {"source": label}
    doc.update(meas.to_dict())
    if meas.dropped_persona_ids.size:
        doc["dropped_personas"] = [int(p) for p in meas.dropped_persona_ids]
    if responses is not None:
        doc["compliance"] = source_compliance(responses).to_dict()
        if usage is None:
            usage = scale_usage(responses, options)
        doc["scale_usage"] = usage.to_dict()
        unstable = repeat_instability(responses, options)
        if unstable is not None:
            doc["instability"] = unstable.to_dict()
    doc["warnings"] = (
        [] if responses is None else source_warnings(responses, meas, options, usage=usage)
    )
    return doc

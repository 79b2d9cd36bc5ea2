"""Diagnostics that keep S and R from misleading: scale usage, saturation and the noise floor.

* :func:`scale_usage`: how a source's valid answers spread over the scale
  (:class:`~persona_collapse.stats.ScaleUsage`);
* :func:`saturation_warning`: one rating holds at least :data:`SATURATION_SHARE`
  of the answers, so S is bounded by the scale;
* :func:`noise_floor_warning`: S is within :data:`NOISE_FLOOR_SES` standard
  errors of the spread repetition noise alone would give (:func:`at_noise_floor`).

docs/diagnostics.md explains the three with the published examples.
"""

from __future__ import annotations

import math

import numpy as np

from ..instruments import Instrument
from ..stats import OVERALL, Measurement, ScaleUsage
from ..store import Responses
from ._cube import stored_distributions
from ._options import AnalysisOptions, instrument_for

SATURATION_SHARE = 0.70
"""A source is saturated when one rating holds at least this share of its valid answers.

Chosen between the published cases: the 15 frontier base models reach at most
0.62 (GPT-4.1-nano, on rating 4; every insecure and secure variant of the 2026
paper but one stays below 0.61), while DeepSeek-V3.1 insecure puts 0.75 and
Qwen3.6-35B-A3B insecure 0.84 of their answers on 5.
"""

NOISE_FLOOR_SES = 2.0
"""S is "at its noise floor" when S - F <= this many standard errors of S."""


def _sampled_usage(responses: Responses, values: tuple[int, ...]) -> ScaleUsage:
    ratings = responses.frame["rating"].to_numpy(dtype=np.float64, na_value=np.nan)
    low = values[0]
    valid = np.isin(ratings, np.asarray(values, dtype=np.float64))
    counts = np.bincount((ratings[valid] - low).astype(np.int64), minlength=len(values))
    return ScaleUsage(
        values=values,
        counts=counts[: len(values)].astype(np.float64),
        n_responses=int(ratings.size),
        n_invalid=int(ratings.size - valid.sum()),
    )


def _distribution_usage(
    responses: Responses, instrument: Instrument, temperature: float | None
) -> ScaleUsage:
    kept, stored = stored_distributions(responses.frame, instrument, temperature)
    total = stored.sum(axis=1, keepdims=True)
    counts = np.divide(stored, total, out=np.zeros_like(stored), where=total > 0).sum(axis=0)
    return ScaleUsage(
        values=tuple(int(v) for v in instrument.scale.values),
        counts=np.asarray(counts, dtype=np.float64),
        n_responses=len(responses.frame),
        n_invalid=len(responses.frame) - len(kept),
    )


def scale_usage(responses: Responses, options: AnalysisOptions | None = None) -> ScaleUsage:
    """The pooled distribution of one source's valid answers over the instrument's scale.

    Sampled runs: counts of every valid rating (rows of -1 or off the scale are
    ``n_invalid``). Logprob runs: the pooled expected distribution, the sum of
    every stored cell distribution (renormalised over the scale; re-weighted to
    ``options.reweight_temperature`` when set); cells without one are ``n_invalid``.
    All answers of the source count, including those of personas that S drops.
    """
    opts = options or AnalysisOptions()
    instrument = instrument_for(responses, opts)
    if responses.method == "logprobs":
        return _distribution_usage(responses, instrument, opts.reweight_temperature)
    return _sampled_usage(responses, tuple(int(v) for v in instrument.scale.values))


def is_saturated(usage: ScaleUsage) -> bool:
    """Whether one rating holds at least :data:`SATURATION_SHARE` of the valid answers."""
    return bool(usage.counts.sum() > 0 and usage.top1_share >= SATURATION_SHARE)


def saturation_warning(label: str, usage: ScaleUsage) -> str | None:
    """The saturation warning for one source, or None when it uses the scale."""
    if not is_saturated(usage):
        return None
    return (
        f"{label}: saturated: {usage.top1_share:.0%} of answers are {usage.top1_rating} "
        f"(threshold {SATURATION_SHARE:.0%}); S is bounded by the scale, so a fall in S "
        "may be the ceiling rather than recovery"
    )


def at_noise_floor(meas: Measurement) -> bool:
    """Whether S (overall) is at its noise floor: finite, with S - F within
    :data:`NOISE_FLOOR_SES` standard errors of S (F: the spread from repetition noise alone)."""
    S, S_se = float(meas.S[0]), float(meas.S_se[0])
    floor = float(meas.noise_floor[meas.groups.index(OVERALL)])
    if not (math.isfinite(S) and math.isfinite(S_se)):
        return False
    return not S - floor > NOISE_FLOOR_SES * S_se


def noise_floor_warning(label: str, meas: Measurement) -> str | None:
    """The warning that S is at its noise floor (:func:`at_noise_floor`), or None."""
    if not at_noise_floor(meas):
        return None
    S = float(meas.S[0])
    floor = float(meas.noise_floor[meas.groups.index(OVERALL)])
    corrected = float(meas.S_corrected[0])
    return (
        f"{label}: S is at its noise floor: S = {S:.2f} against {floor:.2f} from repetition "
        f"noise alone (within {NOISE_FLOOR_SES:g} SE); the personas may have no effect "
        f"(S_corrected = {corrected:.2f})"
    )

"""Temperature curves: S(T), sigma_bar(T) and R(T) of a logprob source across temperatures.

A logprob run stores each cell's T = 1 rating distribution; the distribution
at temperature T follows exactly, p_T(k) ∝ p_1(k)^(1/T)
(:func:`persona_collapse.stats.reweight_temperature`). Each point is the
measurement ``metrics --temperature T`` makes with the same options; one
bootstrap seed serves every temperature, so the points of a curve are
resampled alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..errors import ConfigError, DataError
from ..store import Responses
from ._measure import measure_responses
from ._options import AnalysisOptions

DEFAULT_TEMPERATURES = (0.1, 0.3, 0.5, 0.7, 1.0, 1.5)
SPREADS = ("population", "sample")
"""The cell spread of a curve: the exact population SD of each distribution (ddof = 0, as
the authors computed their curves) or the expected ddof = 1 SD of n sampled repetitions."""
CURVE_POINT_KEYS = ("S", "S_se", "sigma_bar", "sigma_bar_se", "R", "R_se")


def temperature_curves(
    responses: Responses,
    temperatures: Sequence[float],
    options: AnalysisOptions | None = None,
) -> dict[str, Any]:
    """S, sigma_bar and R (with SEs) of one logprob source at each temperature.

    ``options.reweight_temperature`` is replaced by each of ``temperatures``
    in turn. Returns the JSON document of ``curves``: ``source``,
    ``n_personas``, ``n_items``, ``spread`` (one of :data:`SPREADS`: ``population``
    when ``options.expected_reps`` is None, else ``sample``), ``expected_reps``
    and ``points`` (one object per temperature: ``temperature`` and
    :data:`CURVE_POINT_KEYS`).
    """
    if responses.method != "logprobs":
        raise DataError(
            f"{responses.label} holds sampled ratings; curves re-weights the T = 1 "
            "distributions of a logprob run (persona-collapse run MODEL --method logprobs)"
        )
    if not temperatures:
        raise ConfigError("temperature curves need at least one temperature, e.g. 0.1,0.5,1.0")
    opts = options or AnalysisOptions()
    points = []
    meas = None
    for t in temperatures:
        meas = measure_responses(responses, replace(opts, reweight_temperature=float(t)))
        points.append({"temperature": float(t), **meas.values().to_dict()})
    assert meas is not None
    return {
        "source": responses.label,
        "n_personas": meas.n_personas,
        "n_items": meas.n_items,
        "spread": spread_name(opts.expected_reps),
        "expected_reps": opts.expected_reps,
        "points": points,
    }


def spread_name(expected_reps: int | None) -> str:
    """``population`` (exact SD of each distribution) or ``sample`` (expected SD of n samples)."""
    return SPREADS[0] if expected_reps is None else SPREADS[1]


def spread_description(spread: str, expected_reps: int | None) -> str:
    """Words for a table title or a figure: which cell spread the numbers use."""
    if spread == SPREADS[1] and expected_reps:
        return f"expected SD of {expected_reps} sampled repetitions"
    return "population SD of each distribution"

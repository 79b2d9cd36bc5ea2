"""Per-cell views of a response set: cell means and the share of each answer.

Sampled runs use their valid ratings; logprob runs use the same distribution
cube that :func:`~persona_collapse.analysis.measure_responses` measures
(re-weighted to ``reweight_temperature`` when one is set, exactly per spelling
where spellings are stored), so figures and metrics rest on one distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..instruments import Instrument
from ..stats import cell_means, distribution_mean
from ..store import Responses
from ._cube import distribution_cube, rating_cube
from ._options import AnalysisOptions, instrument_for

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CellView:
    """Cell means ``(personas, items)`` in instrument item order, and the answer shares.

    ``means`` are on the instrument's scale (expected rating for logprob runs).
    ``answer_share[k]`` is the fraction of valid answers equal to the ``k``-th
    scale value (expected fraction for logprob runs); it sums to 1.
    """

    means: FloatArray
    persona_ids: IntArray
    item_ids: IntArray
    scale_values: tuple[int, ...]
    answer_share: FloatArray


def _sampled(responses: Responses, instrument: Instrument) -> CellView:
    cube = rating_cube(responses, instrument)
    ratings = responses.frame["rating"].to_numpy(dtype=np.float64)
    valid = ratings[ratings >= instrument.scale.low]
    counts = np.bincount(
        (valid - instrument.scale.low).astype(np.int64), minlength=instrument.scale.size
    )[: instrument.scale.size].astype(np.float64)
    total = counts.sum()
    return CellView(
        means=cell_means(cube.ratings),
        persona_ids=cube.persona_ids,
        item_ids=cube.item_ids,
        scale_values=instrument.scale.values,
        answer_share=counts / total if total > 0 else counts,
    )


def _distributions(
    responses: Responses, instrument: Instrument, temperature: float | None
) -> CellView:
    cube = distribution_cube(responses, instrument, temperature)
    k = instrument.scale.size
    values = np.asarray(instrument.scale.values, dtype=np.float64)
    share = cube.probs.reshape(-1, k).mean(axis=0)
    return CellView(
        means=distribution_mean(cube.probs, values),
        persona_ids=np.asarray(cube.persona_ids, dtype=np.int64),
        item_ids=np.asarray(cube.item_ids, dtype=np.int64),
        scale_values=instrument.scale.values,
        answer_share=share / share.sum() if share.sum() > 0 else share,
    )


def cell_view(responses: Responses, options: AnalysisOptions | None = None) -> CellView:
    """Cell means and answer shares of one response set (sampled or logprob)."""
    opts = options or AnalysisOptions()
    instrument = instrument_for(responses, opts)
    if responses.method == "logprobs":
        return _distributions(responses, instrument, opts.reweight_temperature)
    return _sampled(responses, instrument)

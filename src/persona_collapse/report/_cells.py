"""Per-cell views of a response set for figures: cell means and the share of each answer.

Sampled runs use their valid ratings; logprob runs use the stored rating
distributions (re-weighted to the analysis temperature when one is set), so
both kinds of run draw the same pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._analysis import AnalysisOptions, instrument_for, rating_cube
from ..errors import DataError
from ..instruments import Instrument
from ..stats import cell_means, distribution_mean, reweight_temperature
from ..store import Responses

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CellView:
    """Cell means ``(personas, items)`` in instrument item order, and the answer shares.

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
    frame = responses.frame
    frame = frame[frame["distribution"].map(lambda d: d is not None and len(d) > 0)]
    if frame.empty:
        raise DataError(f"{responses.label}: a logprob run without stored distributions")
    k = instrument.scale.size
    personas = np.unique(frame["persona_id"].to_numpy(dtype=np.int64))
    items = instrument.item_ids[np.isin(instrument.item_ids, frame["question_id"].to_numpy())]
    order = np.argsort(items)
    q_idx = order[np.searchsorted(items[order], frame["question_id"].to_numpy(dtype=np.int64))]
    p_idx = np.searchsorted(personas, frame["persona_id"].to_numpy(dtype=np.int64))
    probs = np.full((personas.size, items.size, k), np.nan)
    probs[p_idx, q_idx] = np.array(frame["distribution"].tolist(), dtype=np.float64)
    complete = ~np.isnan(probs).any(axis=(1, 2))
    probs, personas = probs[complete], personas[complete]
    if temperature is not None:
        probs = reweight_temperature(probs, temperature)
    values = np.asarray(instrument.scale.values, dtype=np.float64)
    share = probs.reshape(-1, k).mean(axis=0)
    return CellView(
        means=distribution_mean(probs, values),
        persona_ids=personas,
        item_ids=items,
        scale_values=instrument.scale.values,
        answer_share=share / share.sum() if share.sum() > 0 else share,
    )


def cell_view(responses: Responses, options: AnalysisOptions) -> CellView:
    """Cell means and answer shares of one response set (sampled or logprob)."""
    instrument = instrument_for(responses, options)
    if responses.method == "logprobs":
        return _distributions(responses, instrument, options.temperature)
    return _sampled(responses, instrument)

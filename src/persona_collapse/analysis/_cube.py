"""The cubes every analysis starts from, built in one place.

* :func:`rating_cube`: the sampled ratings of a source, ``(personas, items, reps)``;
* :func:`distribution_cube`: the stored rating distributions of a logprob source,
  ``(personas, items, scale values)``, optionally re-weighted to a temperature;
* :func:`stored_distributions`: the rows behind it, every stored distribution
  (also those of personas the cube leaves out), for pooled views such as scale usage.

Both are in instrument item order. Measurements, profiles, temperature curves
and the report's cell views all read these, so they rest on the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import DataError
from ..instruments import Instrument
from ..stats import RatingCube, reweight_spellings, reweight_temperature
from ..store import Responses

FloatArray = npt.NDArray[np.float64]


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


def item_positions(axis: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index in ``axis`` of every element of ``values`` (all of which occur in ``axis``)."""
    sorter = np.argsort(axis)
    return np.asarray(sorter[np.searchsorted(axis, values, sorter=sorter)], dtype=np.int64)


def item_subscales(instrument: Instrument, item_ids: np.ndarray) -> np.ndarray:
    """The subscale index of each of ``item_ids`` (positions in ``instrument.subscales``)."""
    return instrument.subscale_index()[item_positions(instrument.item_ids, item_ids)]


@dataclass(frozen=True)
class DistributionCube:
    """Rating distributions ``probs[persona, item, k]`` over the scale values (rows sum to 1).

    Only personas with a distribution for every present item are kept;
    ``item_ids`` are in instrument order. ``temperature`` is the re-weighting
    temperature applied (``None``: the stored T = 1 distributions).
    """

    probs: FloatArray
    persona_ids: np.ndarray
    item_ids: np.ndarray
    temperature: float | None = None


def distribution_cube(
    responses: Responses, instrument: Instrument, temperature: float | None = None
) -> DistributionCube:
    """The stored distributions of a logprob source, optionally re-weighted to temperature T.

    Re-weighting uses the per-token spellings recorded with each cell (exact);
    cells stored without them (older runs, imported data) are re-weighted from
    the summed value mass, which is exact only when each value has one spelling.
    """
    frame, stored = stored_distributions(responses.frame, instrument, temperature)
    if frame.empty:
        raise DataError(f"{responses.label}: a logprob run without stored distributions")
    personas = np.unique(frame["persona_id"].to_numpy())
    items = instrument.item_ids[np.isin(instrument.item_ids, frame["question_id"].to_numpy())]
    k = instrument.scale.size
    p_idx = np.searchsorted(personas, frame["persona_id"].to_numpy())
    q_idx = item_positions(items, frame["question_id"].to_numpy())
    probs = np.full((personas.size, items.size, k), np.nan)
    probs[p_idx, q_idx] = stored
    complete = ~np.isnan(probs).any(axis=(1, 2))
    if not complete.any():
        raise DataError(f"{responses.label}: no persona has a distribution for every item")
    return DistributionCube(probs[complete], personas[complete], items, temperature)


def stored_distributions(
    frame: pd.DataFrame, instrument: Instrument, temperature: float | None = None
) -> tuple[pd.DataFrame, FloatArray]:
    """The rows of ``frame`` that store a distribution, and those distributions.

    The array is ``(rows, scale values)`` as stored (not renormalised), re-weighted
    to ``temperature`` when given; it is ``(0, scale values)`` when no row has one.
    """
    has = frame["distribution"].map(lambda d: d is not None and len(d) > 0).to_numpy(dtype=bool)
    kept = frame[has]
    if kept.empty:
        return kept, np.zeros((0, instrument.scale.size))
    stored = np.array(kept["distribution"].tolist(), dtype=np.float64)
    if temperature is not None:
        stored = _reweighted(kept, stored, instrument, temperature)
    return kept, stored


def _reweighted(
    frame: pd.DataFrame, stored: np.ndarray, instrument: Instrument, temperature: float
) -> np.ndarray:
    """Rows of ``stored`` at ``temperature``: exact from spellings where recorded, else summed."""
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

"""Response grids as arrays: ratings per (persona, item, repetition) and cell moments."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import DataError
from ..protocol import MISSING_RATING

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def read_only(array: FloatArray) -> FloatArray:
    """``array``, made read-only: what a cache hands to every caller must never change."""
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class RatingCube:
    """Valid ratings as a dense ``(personas, items, repetitions)`` array.

    ``ratings[p, q, j]`` is the ``j``-th valid rating of persona ``p`` on item
    ``q``; cells with fewer valid ratings than the widest cell are padded with
    NaN at the end (valid ratings always come first). Missing answers (rating
    -1) are dropped, and a persona with any empty cell has been dropped
    entirely, as in the published analysis (PROTOCOL.md section 3).

    Self-mode data (no persona) is one pseudo-persona with id -1.
    """

    ratings: FloatArray
    persona_ids: IntArray
    item_ids: IntArray
    dropped_persona_ids: IntArray

    @property
    def shape(self) -> tuple[int, int, int]:
        p, q, n = self.ratings.shape
        return p, q, n

    @property
    def n_personas(self) -> int:
        return int(self.ratings.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.ratings.shape[1])

    @property
    def counts(self) -> IntArray:
        """Number of valid ratings per cell, shape ``(personas, items)``."""
        return np.asarray(np.sum(~np.isnan(self.ratings), axis=2), dtype=np.int64)

    @classmethod
    def from_long(
        cls,
        persona_ids: npt.ArrayLike,
        item_ids: npt.ArrayLike,
        ratings: npt.ArrayLike,
        *,
        items: npt.ArrayLike | None = None,
    ) -> RatingCube:
        """Build the cube from one row per answer (long format).

        ``items`` fixes the item axis (instrument order); by default the item
        ids present in the data, ascending. Rows with rating -1 are dropped;
        repetition indices are not needed (every valid rating of a cell
        counts, including extra repetitions).
        """
        pid = np.asarray(persona_ids, dtype=np.int64)
        iid = np.asarray(item_ids, dtype=np.int64)
        rat = np.asarray(ratings, dtype=np.float64)
        if not (pid.shape == iid.shape == rat.shape):
            raise ValueError("persona_ids, item_ids and ratings must have the same length")
        item_axis = np.unique(iid) if items is None else np.asarray(items, dtype=np.int64)
        all_personas = np.unique(pid)
        if all_personas.size == 0:
            raise DataError("no responses to analyse: the source holds no rows")

        valid = rat != MISSING_RATING
        pid, iid, rat = pid[valid], iid[valid], rat[valid]
        p_index = np.searchsorted(all_personas, pid)
        sorter = np.argsort(item_axis)
        q_pos = np.searchsorted(item_axis, iid, sorter=sorter)
        q_index = sorter[np.minimum(q_pos, item_axis.size - 1)]
        known = item_axis[q_index] == iid
        if not np.all(known):
            raise DataError(
                f"item id {int(iid[~known][0])} is not an item of the instrument; "
                "check the question_id column or choose the right --instrument"
            )

        n_p, n_q = all_personas.size, item_axis.size
        cell = p_index * n_q + q_index
        order = np.argsort(cell, kind="stable")
        cell_sorted = cell[order]
        counts = np.bincount(cell_sorted, minlength=n_p * n_q)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        position = np.arange(cell_sorted.size) - starts[cell_sorted]
        width = int(counts.max()) if counts.size else 0
        flat = np.full((n_p * n_q, max(width, 1)), np.nan)
        flat[cell_sorted, position] = rat[order]
        cube = flat.reshape(n_p, n_q, -1)

        complete = np.all(counts.reshape(n_p, n_q) > 0, axis=1)
        if not np.any(complete):
            raise DataError(
                "no persona has a valid rating for every item, so nothing can be estimated; "
                "check that the source holds complete runs"
            )
        return cls(
            ratings=cube[complete],
            persona_ids=all_personas[complete],
            item_ids=item_axis,
            dropped_persona_ids=all_personas[~complete],
        )


def cell_means(ratings: FloatArray) -> FloatArray:
    """Mean of the valid ratings of each cell (last axis), NaN padding ignored."""
    return np.asarray(np.nanmean(ratings, axis=-1), dtype=np.float64)


def cell_sds(ratings: FloatArray, ddof: int = 1) -> FloatArray:
    """SD of each cell's valid ratings with the given ddof; a cell with <= ddof ratings has SD 0."""
    n = np.sum(~np.isnan(ratings), axis=-1)
    mean = np.nanmean(ratings, axis=-1, keepdims=True)
    ss = np.nansum((ratings - mean) ** 2, axis=-1)
    denom = n - ddof
    return np.where(denom > 0, np.sqrt(ss / np.maximum(denom, 1)), 0.0)


def across_persona_sd(means: FloatArray, ddof: int = 1) -> FloatArray:
    """SD over axis -2 (personas) of cell means, with ``ddof``, in rating points.

    NaN, without numpy's degrees-of-freedom warning, where there are no more
    personas than ``ddof`` (a pilot of one persona), as ``np.std`` gives.
    """
    if means.shape[-2] <= ddof:
        return np.full(means.shape[:-2] + means.shape[-1:], np.nan)
    return np.asarray(np.std(means, axis=-2, ddof=ddof))

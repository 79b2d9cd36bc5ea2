"""Profiles: where a model's ratings sit on each subscale, with and without personas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._cells import FloatArray, RatingCube, cell_means, cell_sds
from ._estimators import group_matrix


@dataclass(frozen=True)
class ProfileValue:
    """A subscale's location (``mean``, scale units) and spread (``sd``, scale units)."""

    mean: float
    sd: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "sd": self.sd}


Profile = dict[str, ProfileValue]


def score_reversed(ratings: FloatArray, reverse: npt.ArrayLike, low: int, high: int) -> FloatArray:
    """Ratings with reverse-keyed items (axis 1) scored as ``low + high - rating``."""
    rev = np.asarray(reverse, dtype=bool)
    if not rev.any():
        return ratings
    out = ratings.copy()
    out[:, rev] = low + high - out[:, rev]
    return out


def self_profile(
    cube: RatingCube, subscale_index: npt.ArrayLike, subscales: Sequence[str]
) -> Profile:
    """Unconditioned (self-mode) profile: per subscale, the mean of its item means
    +- the mean of its item SDs (ddof = 1 over repetitions).

    Personas in the cube (normally the single self pseudo-persona) are pooled by
    averaging their item statistics.
    """
    groups = group_matrix(subscale_index, len(subscales))[:, 1:]
    item_means = cell_means(cube.ratings).mean(axis=0)
    item_sds = cell_sds(cube.ratings, ddof=1).mean(axis=0)
    means, sds = item_means @ groups, item_sds @ groups
    return {name: ProfileValue(float(means[f]), float(sds[f])) for f, name in enumerate(subscales)}


def persona_profile(
    cube: RatingCube, subscale_index: npt.ArrayLike, subscales: Sequence[str], *, ddof: int = 1
) -> Profile:
    """Profile across personas (e.g. the toxic personas): per persona the mean rating
    of each subscale; then the mean +- SD (``ddof``, default 1) across personas."""
    groups = group_matrix(subscale_index, len(subscales))[:, 1:]
    per_persona = cell_means(cube.ratings) @ groups
    means = per_persona.mean(axis=0)
    sds = (
        np.std(per_persona, axis=0, ddof=ddof)
        if per_persona.shape[0] > ddof
        else np.zeros(len(subscales))
    )
    return {name: ProfileValue(float(means[f]), float(sds[f])) for f, name in enumerate(subscales)}


def persona_subscale_means(
    cube: RatingCube, subscale_index: npt.ArrayLike, n_subscales: int
) -> FloatArray:
    """Mean rating of every persona on every subscale, shape ``(personas, subscales)``."""
    return cell_means(cube.ratings) @ group_matrix(subscale_index, n_subscales)[:, 1:]


def saturation(profile: Profile, low: int, high: int) -> dict[str, float]:
    """How close each subscale mean is to the scale ceiling: ``(mean - low) / (high - low)``.

    1 means every answer at the top of the scale (insecure variants reach about
    0.8-1.0 on all five MFQ foundations).
    """
    return {name: (value.mean - low) / (high - low) for name, value in profile.items()}


def coefficient_of_variation(values: npt.ArrayLike) -> float:
    """Population SD (ddof = 0) over mean of per-subscale values: uniformity across subscales."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.std(v, ddof=0) / np.mean(v))

"""Moral susceptibility S, mean within-persona spread sigma_bar and robustness R.

Conventions (PROTOCOL.md section 3; the published numbers use exactly these):

- cell mean ``m_pq`` and cell SD ``s_pq`` over the valid repetitions of persona
  ``p`` on item ``q``; ``s_pq`` uses ddof = 1 and is 0 for a one-rating cell;
- ``S = mean_q SD_p(m_pq)`` with ``ddof`` (default 1) over personas;
- ``sigma_bar = mean_{p,q} s_pq`` and ``R = 1 / sigma_bar``;
- per subscale (moral foundation): the same over that subscale's items;
- the noise floor ``F = mean_q sqrt(mean_p s2_pq / n_pq)`` and the corrected
  ``S* = mean_q sqrt(max(0, S_q^2 - F_q^2))`` (:mod:`._noise_floor`).

All quantities are in rating-scale units (R in inverse units). Overall and
subscale values are computed together through a group-averaging matrix, so
every item statistic is computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt

from ._bootstrap import BootstrapConfig, Draws, persona_bootstrap, repetition_bootstrap
from ._cells import (
    FloatArray,
    IntArray,
    RatingCube,
    across_persona_sd,
    cell_means,
    cell_sds,
)
from ._distributions import distribution_mean, distribution_sd, expected_sample_sd
from ._noise_floor import cell_noise, corrected_susceptibility, item_noise_floor

OVERALL = "all"
"""Name of the group holding the values over every item."""


def group_matrix(subscale_index: npt.ArrayLike, n_subscales: int) -> FloatArray:
    """Averaging weights, shape ``(items, 1 + subscales)``.

    Column 0 averages over all items, column ``1 + f`` over the items of
    subscale ``f`` (all zeros, giving NaN downstream, if it has none).
    """
    idx = np.asarray(subscale_index, dtype=np.int64)
    onehot = np.zeros((idx.size, 1 + n_subscales))
    onehot[:, 0] = 1.0
    onehot[np.arange(idx.size), 1 + idx] = 1.0
    sizes = onehot.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return onehot / np.where(sizes > 0, sizes, np.nan)


def item_susceptibility(means: FloatArray, ddof: int = 1) -> FloatArray:
    """Across-persona SD of cell means per item (axis -2 is personas), with ``ddof``."""
    return across_persona_sd(means, ddof)


@dataclass(frozen=True)
class MetricValues:
    """S, sigma_bar and R with standard errors, for all items or one subscale."""

    S: float
    S_se: float
    sigma_bar: float
    sigma_bar_se: float
    R: float
    R_se: float

    def to_dict(self) -> dict[str, float]:
        """``{"S", "S_se", "sigma_bar", "sigma_bar_se", "R", "R_se"}``, in field order."""
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """S, sigma_bar and R overall and per subscale, with the bootstrap replicates behind the SEs.

    ``groups`` is ``("all", *subscales)``; arrays indexed by group follow it.
    SE = sqrt(SE_persona^2 + SE_repetition^2) (bootstrap SDs with ddof = 1);
    SE(R) = SE(sigma_bar) / sigma_bar^2 (delta method). ``noise_floor`` (F) and
    ``S_corrected`` (S*) are in rating-scale units, like S (:mod:`._noise_floor`).
    """

    groups: tuple[str, ...]
    S: FloatArray
    sigma_bar: FloatArray
    noise_floor: FloatArray
    S_corrected: FloatArray
    persona_draws: Draws
    repetition_draws: Draws | None
    persona_ids: IntArray
    item_ids: IntArray
    dropped_persona_ids: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    config: BootstrapConfig = field(default_factory=BootstrapConfig)

    @property
    def n_personas(self) -> int:
        return int(self.persona_ids.size)

    @property
    def n_items(self) -> int:
        return int(self.item_ids.size)

    @property
    def R(self) -> FloatArray:
        """1 / sigma_bar; infinite, without a warning, where sigma_bar is 0."""
        with np.errstate(divide="ignore"):
            return np.asarray(1.0 / self.sigma_bar)

    def _se(self, name: str) -> FloatArray:
        parts = [getattr(self.persona_draws, name)]
        if self.repetition_draws is not None:
            parts.append(getattr(self.repetition_draws, name))
        with np.errstate(invalid="ignore"):  # replicates may hold NaN or inf (one persona)
            var = sum(np.var(p, axis=0, ddof=1) for p in parts if p.shape[0] > 1)
        return np.sqrt(np.asarray(var, dtype=np.float64) * np.ones(len(self.groups)))

    @property
    def S_se(self) -> FloatArray:
        return self._se("S")

    @property
    def sigma_bar_se(self) -> FloatArray:
        return self._se("sigma_bar")

    @property
    def R_se(self) -> FloatArray:
        """Delta-method SE of R; NaN or infinite, without a warning, where sigma_bar is 0."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(self.sigma_bar_se / self.sigma_bar**2)

    @property
    def S_corrected_se(self) -> FloatArray:
        """SE of S* from the same two-level bootstrap as S (each replicate corrected by its own floor)."""
        return self._se("S_corrected")

    def noise_values(self, group: str = OVERALL) -> dict[str, float]:
        """``S_corrected``, ``S_corrected_se`` and ``S_noise_floor`` of one group."""
        g = self.groups.index(group)
        return {
            "S_corrected": float(self.S_corrected[g]),
            "S_corrected_se": float(self.S_corrected_se[g]),
            "S_noise_floor": float(self.noise_floor[g]),
        }

    def values(self, group: str = OVERALL) -> MetricValues:
        g = self.groups.index(group)
        s_se, sb_se, r_se = self.S_se, self.sigma_bar_se, self.R_se
        return MetricValues(
            S=float(self.S[g]),
            S_se=float(s_se[g]),
            sigma_bar=float(self.sigma_bar[g]),
            sigma_bar_se=float(sb_se[g]),
            R=float(self.R[g]),
            R_se=float(r_se[g]),
        )

    @property
    def subscales(self) -> tuple[str, ...]:
        return self.groups[1:]

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of ``metrics`` (DESIGN.md), without ``source``."""
        out: dict[str, object] = {"n_personas": self.n_personas, "n_items": self.n_items}
        out.update(self.values(OVERALL).to_dict())
        out.update(self.noise_values(OVERALL))
        out["foundations"] = {
            name: self.values(name).to_dict() | self.noise_values(name) for name in self.subscales
        }
        return out


def measure(
    cube: RatingCube,
    subscale_index: npt.ArrayLike,
    subscales: Sequence[str],
    config: BootstrapConfig | None = None,
) -> Measurement:
    """Measure S, sigma_bar and R of sampled ratings, with persona and repetition bootstraps."""
    cfg = config or BootstrapConfig()
    groups = group_matrix(subscale_index, len(subscales))
    means = cell_means(cube.ratings)
    sds = cell_sds(cube.ratings, ddof=1)
    S_items = item_susceptibility(means, cfg.ddof)
    noise = cell_noise(sds, cube.counts)
    floor_items = item_noise_floor(noise)
    return Measurement(
        groups=(OVERALL, *subscales),
        S=S_items @ groups,
        sigma_bar=sds.mean(axis=0) @ groups,
        noise_floor=floor_items @ groups,
        S_corrected=corrected_susceptibility(S_items, floor_items) @ groups,
        persona_draws=persona_bootstrap(means, sds, groups, cfg, noise),
        repetition_draws=repetition_bootstrap(cube.ratings, means, sds, groups, cfg),
        persona_ids=cube.persona_ids,
        item_ids=cube.item_ids,
        dropped_persona_ids=cube.dropped_persona_ids,
        config=cfg,
    )


def measure_distributions(
    probs: npt.ArrayLike,
    values: npt.ArrayLike,
    subscale_index: npt.ArrayLike,
    subscales: Sequence[str],
    *,
    persona_ids: npt.ArrayLike,
    item_ids: npt.ArrayLike,
    n_repetitions: int | None = None,
    config: BootstrapConfig | None = None,
) -> Measurement:
    """Measure S, sigma_bar and R from exact rating distributions, shape ``(personas, items, K)``.

    Cell means are exact. ``n_repetitions=None`` uses the exact population SD
    (ddof = 0) as the cell spread; an integer ``n`` uses the expected ddof = 1
    SD of ``n`` sampled ratings, the value a sampled run with ``n`` repetitions
    would give in expectation. Exact cells have no repetition noise, so only
    the persona bootstrap enters the SEs, and S_corrected = S. The noise floor
    is 0, or with ``n_repetitions=n`` the floor that n sampled repetitions
    would carry, ``mean_q sqrt(mean_p Var_pq / n)`` with Var_pq the exact
    population variance (the expectation of the ddof = 1 sample variance).
    """
    cfg = config or BootstrapConfig()
    groups = group_matrix(subscale_index, len(subscales))
    means = distribution_mean(probs, values)
    S = item_susceptibility(means, cfg.ddof) @ groups
    if n_repetitions is None:
        sds = distribution_sd(probs, values)
        floor = np.zeros_like(S)
    else:
        sds = expected_sample_sd(probs, values, n_repetitions)
        variance = distribution_sd(probs, values) ** 2
        floor = item_noise_floor(variance / n_repetitions) @ groups
    return Measurement(
        groups=(OVERALL, *subscales),
        S=S,
        sigma_bar=sds.mean(axis=0) @ groups,
        noise_floor=floor,
        S_corrected=S,
        persona_draws=persona_bootstrap(means, sds, groups, cfg),
        repetition_draws=None,
        persona_ids=np.asarray(persona_ids, dtype=np.int64),
        item_ids=np.asarray(item_ids, dtype=np.int64),
        config=cfg,
    )

"""Persona and repetition bootstraps of S and sigma_bar.

Seeding: each bootstrap draws from its own ``numpy.random.Generator``; the
persona bootstrap is seeded with ``[seed, 0]`` and the repetition bootstrap
with ``[seed, 1, stream]``. Overall and subscale values share the same draws.
Because the persona stream depends only on ``seed`` and the number of
personas, variants measured on the same persona set get the same persona
resamples: differences between them are a paired bootstrap. The published
reference seeded per (model, foundation); SEs agree within bootstrap noise
(about 10%).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._cells import FloatArray


@dataclass(frozen=True)
class Draws:
    """Bootstrap replicates of S and sigma_bar, shape ``(draws, 1 + subscales)``."""

    S: FloatArray
    sigma_bar: FloatArray


@dataclass(frozen=True)
class BootstrapConfig:
    """How standard errors are estimated.

    ``persona_draws``: resamples of personas with replacement (published: 2000).
    ``repetition_draws``: resamples of ratings within every cell (published: 400).
    ``seed``: generator seed (see module docs). ``stream``: separates the
    repetition streams of sources compared with each other.
    ``ddof``: of the across-persona SD in S (published numbers: 1).
    """

    persona_draws: int = 2000
    repetition_draws: int = 400
    seed: int = 0
    stream: int = 0
    ddof: int = 1


def _draws(S_items: FloatArray, sigma_items: FloatArray, groups: FloatArray) -> Draws:
    return Draws(S=S_items @ groups, sigma_bar=sigma_items @ groups)


def persona_bootstrap(
    means: FloatArray, sds: FloatArray, groups: FloatArray, cfg: BootstrapConfig
) -> Draws:
    """Resample personas with replacement, as multinomial counts ``(draws, personas)``.

    A resample's sums over personas are then matrix products with the
    ``(personas, items)`` cell arrays, so no ``(draws, personas, items)`` array is built.
    """
    n_p = means.shape[0]
    rng = np.random.default_rng([cfg.seed, 0])
    counts = rng.multinomial(n_p, np.full(n_p, 1.0 / n_p), size=max(cfg.persona_draws, 0))
    counts = counts.astype(np.float64)
    total = counts @ means
    var = (counts @ means**2 - total**2 / n_p) / max(n_p - cfg.ddof, 1)
    S_items = np.sqrt(np.maximum(var, 0.0))
    sigma_items = counts @ sds / n_p
    return _draws(S_items, sigma_items, groups)


def repetition_bootstrap(
    ratings: FloatArray,
    means: FloatArray,
    sds: FloatArray,
    groups: FloatArray,
    cfg: BootstrapConfig,
) -> Draws:
    """Resample the valid ratings within every cell with replacement.

    Only cells whose ratings vary can change under resampling; the others keep
    their mean and SD 0, so only the varying cells are drawn.
    """
    n_p, n_q, width = ratings.shape
    n_b = max(cfg.repetition_draws, 0)
    rng = np.random.default_rng([cfg.seed, 1, cfg.stream])
    counts = np.sum(~np.isnan(ratings), axis=2)
    varying = np.flatnonzero(sds.ravel() > 0)
    n = counts.ravel()[varying]
    values = np.nan_to_num(ratings.reshape(-1, width)[varying])
    picks = rng.integers(0, n[None, :, None], size=(n_b, varying.size, width))
    taken = np.take_along_axis(values[None, :, :], picks, axis=2)
    taken *= np.arange(width)[None, None, :] < n[None, :, None]
    sums = taken.sum(axis=2)
    sq = (taken**2).sum(axis=2)
    draw_means = sums / n
    draw_sds = np.sqrt(np.maximum(sq - sums * draw_means, 0.0) / np.maximum(n - 1, 1))

    all_means = np.broadcast_to(means.ravel(), (n_b, n_p * n_q)).copy()
    all_sds = np.broadcast_to(sds.ravel(), (n_b, n_p * n_q)).copy()
    all_means[:, varying] = draw_means
    all_sds[:, varying] = draw_sds
    all_means = all_means.reshape(n_b, n_p, n_q)
    S_items = np.std(all_means, axis=1, ddof=cfg.ddof)
    sigma_items = all_sds.reshape(n_b, n_p, n_q).mean(axis=1)
    return _draws(S_items, sigma_items, groups)

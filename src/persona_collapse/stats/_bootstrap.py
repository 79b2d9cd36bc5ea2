"""Persona and repetition bootstraps of S and sigma_bar.

Seeding: each bootstrap draws from its own ``numpy.random.Generator``; the
persona bootstrap is seeded with ``[seed, 0]`` and the repetition bootstrap
with ``[seed, 1, stream]``. Overall and subscale values share the same draws.
Because the persona stream depends only on ``seed`` and the number of
personas, and personas are in ascending id order, variants measured on the same
persona ids get the same resample count for every id: differences between them
are a paired bootstrap. Sources with different persona sets are paired on their
shared ids (``analysis.compare_responses`` measures both on those), never by
list position. The published
reference seeded per (model, foundation); SEs agree within bootstrap noise
(about 10%).

The repetition bootstrap draws its binomials from tables of binomial CDFs
(:func:`.resampled_moments`), one uniform each, cell-major; until issue 21 it
used numpy's binomial draw-major, so its replicates for a given seed changed
then (same distribution; the published SEs moved by 0.989-1.013).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError
from ._cells import FloatArray, across_persona_sd, read_only
from ._noise_floor import corrected_susceptibility, item_noise_floor
from ._resample import TABLE_WIDTH, resampled_counts, resampled_moments

MAX_DRAWS = 100_000
"""Most persona or repetition draws a :class:`BootstrapConfig` accepts (published: 2000, 400)."""


class BootstrapConfigError(ConfigError, ValueError):
    """A :class:`BootstrapConfig` value out of range (a one-line user error on the command line)."""


@dataclass(frozen=True)
class Draws:
    """Bootstrap replicates of S, sigma_bar and the corrected S*, shape ``(draws, 1 + subscales)``.

    ``S_corrected`` is S with each replicate's own noise floor removed
    (:mod:`._noise_floor`); it equals ``S`` where cell means are exact.
    """

    S: FloatArray
    sigma_bar: FloatArray
    S_corrected: FloatArray


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

    def __post_init__(self) -> None:
        """Refuse values the bootstraps cannot use (ValueError naming the option).

        Draws are bounded by :data:`MAX_DRAWS` (a persona draw holds one count
        per persona, so 10^9 draws would need terabytes); seeds are whole
        numbers >= 0, as numpy's generators require.
        """
        if not 2 <= self.persona_draws <= MAX_DRAWS:
            raise BootstrapConfigError(
                f"--persona-draws must be between 2 and {MAX_DRAWS:,}, not {self.persona_draws}"
            )
        if not 0 <= self.repetition_draws <= MAX_DRAWS:
            raise BootstrapConfigError(
                f"--repetition-draws must be between 0 and {MAX_DRAWS:,}, "
                f"not {self.repetition_draws}"
            )
        if self.seed < 0:
            raise BootstrapConfigError(
                f"--seed must be a whole number >= 0, not {self.seed}; use e.g. --seed 0"
            )
        if self.stream < 0:
            raise BootstrapConfigError(f"bootstrap stream must be >= 0, not {self.stream}")
        if self.ddof not in (0, 1):
            raise BootstrapConfigError(f"--ddof must be 0 or 1, not {self.ddof}")


def _draws(
    S_items: FloatArray,
    sigma_items: FloatArray,
    groups: FloatArray,
    floor_items: FloatArray | None = None,
) -> Draws:
    corrected = S_items if floor_items is None else corrected_susceptibility(S_items, floor_items)
    return Draws(S=S_items @ groups, sigma_bar=sigma_items @ groups, S_corrected=corrected @ groups)


#: Persona resample-count arrays up to this many elements (float64) are kept for reuse.
CACHED_COUNT_ELEMENTS = 4_000_000


def _persona_counts(seed: int, n_personas: int, n_draws: int) -> FloatArray:
    """Resample counts ``(draws, personas)`` of the persona stream (read-only).

    They depend on nothing but these three numbers (module docs), so sources of
    the same size measured in one process (``metrics`` on 12 files) share one
    draw, when it is small enough to keep (:data:`CACHED_COUNT_ELEMENTS`).
    """
    if n_personas * n_draws <= CACHED_COUNT_ELEMENTS:
        return _cached_persona_counts(seed, n_personas, n_draws)
    return _draw_persona_counts(seed, n_personas, n_draws)


@lru_cache(maxsize=4)
def _cached_persona_counts(seed: int, n_personas: int, n_draws: int) -> FloatArray:
    return _draw_persona_counts(seed, n_personas, n_draws)


def _draw_persona_counts(seed: int, n_personas: int, n_draws: int) -> FloatArray:
    rng = np.random.default_rng([seed, 0])
    counts = rng.multinomial(n_personas, np.full(n_personas, 1.0 / n_personas), size=n_draws)
    return read_only(counts.astype(np.float64))


def persona_bootstrap(
    means: FloatArray,
    sds: FloatArray,
    groups: FloatArray,
    cfg: BootstrapConfig,
    noise: FloatArray | None = None,
) -> Draws:
    """Resample personas with replacement, as multinomial counts ``(draws, personas)``.

    A resample's sums over personas are then matrix products with the
    ``(personas, items)`` cell arrays, so no ``(draws, personas, items)`` array is built.
    ``noise``: the cells' ``s2_pq / n_pq`` (:func:`.cell_noise`), from which each
    replicate's noise floor is taken; ``None`` for exact cell means (no floor).
    """
    n_p = means.shape[0]
    counts = _persona_counts(cfg.seed, n_p, max(cfg.persona_draws, 0))
    total = counts @ means
    var = (counts @ means**2 - total**2 / n_p) / max(n_p - cfg.ddof, 1)
    S_items = np.sqrt(np.maximum(var, 0.0))
    sigma_items = counts @ sds / n_p
    floor_items = None if noise is None else np.sqrt(np.maximum(counts @ noise / n_p, 0.0))
    return _draws(S_items, sigma_items, groups, floor_items)


def _resampled_sums(
    counts: npt.NDArray[np.int64], levels: FloatArray, n_draws: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Sums and sums of squares of ``n_draws`` resamples of every cell, each ``(cells, draws)``.

    Cells of up to :data:`.TABLE_WIDTH` ratings (all published runs) are drawn
    by :func:`.resampled_moments`; wider ones by :func:`.resampled_counts`.
    """
    if counts.size == 0 or counts.sum(axis=1).max() <= TABLE_WIDTH:
        return resampled_moments(counts, levels, n_draws, rng)
    drawn = resampled_counts(counts, n_draws, rng)
    return (drawn @ levels).T.copy(), (drawn @ levels**2).T.copy()


#: Upper bound on the elements of one chunk's largest temporary array (float64: 8 bytes
#: each). The repetition bootstrap works through its draws in chunks below this size,
#: so its memory stays flat and its time grows linearly with the number of cells.
CHUNK_ELEMENTS = 16_000_000


def _draw_chunks(n_draws: int, per_draw: int, elements: int | None = None) -> list[int]:
    """Sizes of the consecutive chunks that ``n_draws`` draws are worked through in.

    A chunk holds at most ``elements`` array elements (``per_draw`` per draw; at
    least one draw per chunk); None: :data:`CHUNK_ELEMENTS`, read at call time.
    """
    bound = CHUNK_ELEMENTS if elements is None else elements
    size = max(1, min(n_draws, bound // max(per_draw, 1)))
    full, rest = divmod(n_draws, size)
    return [size] * full + ([rest] if rest else [])


def repetition_bootstrap(
    ratings: FloatArray,
    means: FloatArray,
    sds: FloatArray,
    groups: FloatArray,
    cfg: BootstrapConfig,
) -> Draws:
    """Resample the valid ratings within every cell with replacement.

    Resampling ``n`` ratings of a cell with replacement is a multinomial draw
    over the rating values it holds, so only the cells' value counts are
    resampled. Cells whose ratings do not vary keep their mean and SD 0 (and
    add nothing to the noise floor; each replicate's floor comes from its own
    cell SDs). Draws are taken in chunks of at most :data:`CHUNK_ELEMENTS` array elements
    from one generator; when all draws fit one chunk (400 draws of up to
    40,000 varying cells with 6 rating values, e.g. the published 100 x 30
    cells) the result is the same as drawing them all at once.
    """
    n_p, n_q, width = ratings.shape
    n_b = max(cfg.repetition_draws, 0)
    rng = np.random.default_rng([cfg.seed, 1, cfg.stream])
    varying = np.flatnonzero(sds.ravel() > 0)
    values = ratings.reshape(-1, width)[varying]
    levels = np.unique(values[~np.isnan(values)])
    counts = np.zeros((varying.size, levels.size), dtype=np.int64)
    for k, level in enumerate(levels):
        counts[:, k] = np.sum(values == level, axis=1)
    n = counts.sum(axis=1)
    flat_means, flat_sds = means.ravel(), sds.ravel()
    per_draw = max(varying.size * max(levels.size, 1), n_p * n_q)
    S_chunks: list[FloatArray] = []
    sigma_chunks: list[FloatArray] = []
    floor_chunks: list[FloatArray] = []
    for size in _draw_chunks(n_b, per_draw):
        sums, squares = _resampled_sums(counts, levels, size, rng)
        draw_means = sums / n[:, None]
        draw_sds = np.sqrt(
            np.maximum(squares - sums * draw_means, 0.0) / np.maximum(n - 1, 1)[:, None]
        )
        del sums, squares
        # Chunk arrays are (personas * items, draws): cells are rows, reductions run over axis 0.
        chunk = np.repeat(flat_means[:, None], size, axis=1)
        chunk[varying] = draw_means
        # Personas on axis -2 (a view, reduced over the same axis as before: same numbers);
        # NaN without numpy's warning when there are no more personas than ddof.
        S_chunks.append(
            across_persona_sd(np.moveaxis(chunk.reshape(n_p, n_q, size), 0, 1), cfg.ddof).T
        )
        chunk = np.repeat(flat_sds[:, None], size, axis=1)
        chunk[varying] = draw_sds
        sigma_chunks.append(chunk.reshape(n_p, n_q, size).mean(axis=0).T)
        chunk = np.zeros((n_p * n_q, size))
        chunk[varying] = draw_sds**2 / n[:, None]
        floor_chunks.append(item_noise_floor(np.moveaxis(chunk.reshape(n_p, n_q, size), 2, 0)))
        del chunk
    if not S_chunks:
        empty = np.zeros((0, n_q))
        return _draws(empty, empty, groups)
    return _draws(
        np.concatenate(S_chunks),
        np.concatenate(sigma_chunks),
        groups,
        np.concatenate(floor_chunks),
    )

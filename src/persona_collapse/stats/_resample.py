"""Multinomial resamples of per-cell value counts, drawn as a chain of binomials.

Resampling the ``n`` values of a cell with replacement is a multinomial draw
of its value counts. Both samplers here draw it as a chain over the levels
(a handful of rating or answer values): level ``l`` takes
``Binomial(remaining, counts[l] / counts[l:].sum())`` of the draws still
unassigned, which is exact for the multinomial. Only cell-levels with a share
strictly between 0 and 1 are random; the rest take none or all.

* :func:`resampled_counts` draws each binomial with numpy's
  ``Generator.binomial`` (the task bootstraps; any number of values per cell);
* :func:`resampled_counts_by_table` draws each binomial by inverting its CDF
  with one uniform, the CDFs read from a table of every ``(remaining, count,
  mass)`` triple of cells holding at most :data:`TABLE_WIDTH` values. Its
  draws differ from the first sampler's for the same seed (the generator is
  consumed as uniforms), with the same distribution; it is several times
  faster, because numpy's binomial sets up its sampler anew for every
  ``(n, p)`` pair, which here changes from one element to the next.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb

import numpy as np
import numpy.typing as npt

from ._cells import FloatArray, read_only

IntArray = npt.NDArray[np.int64]

TABLE_WIDTH = 32
"""Most values per cell that :func:`resampled_counts_by_table` takes (its table has
``(width + 1)**4`` entries: 9 MB at 32)."""


def resampled_counts(counts: IntArray, n_draws: int, rng: np.random.Generator) -> FloatArray:
    """Multinomial resamples of per-cell value counts, ``(cells, levels)`` -> ``(draws, cells, levels)``.

    Each binomial of the chain (module docs) is one ``rng.binomial`` element,
    vectorised over draws and the random cells of a level.
    """
    n_cells, n_levels = counts.shape
    out = np.zeros((n_draws, n_cells, n_levels))
    if n_levels == 0:
        return out
    remaining = np.broadcast_to(counts.sum(axis=1), (n_draws, n_cells)).copy()
    mass_left = counts.sum(axis=1).astype(np.float64)
    for level in range(n_levels - 1):
        share = np.divide(counts[:, level], mass_left, out=np.zeros(n_cells), where=mass_left > 0)
        random = (share > 0) & (share < 1)
        drawn = np.where(share >= 1, remaining, 0)
        drawn[:, random] = rng.binomial(remaining[:, random], share[random])
        out[:, :, level] = drawn
        remaining -= drawn
        mass_left -= counts[:, level]
    out[:, :, -1] = remaining
    return out


@lru_cache(maxsize=4)
def binomial_cdf_table(width: int) -> FloatArray:
    """``P(Binomial(r, c / m) <= k)`` for ``0 <= r, c, m, k <= width``, shape ``(k, r*c*m)``.

    Row ``k`` is flat over ``(r, c, m)`` in C order, so one ``np.take`` reads
    the k-th CDF value of many triples. Entries with ``k >= r`` are exactly 1
    (a draw never exceeds ``r``); ``m = 0`` or ``c > m`` (never read) are 1 too.
    Read-only.
    """
    size = width + 1
    choose = np.array([[comb(r, k) for k in range(size)] for r in range(size)], dtype=np.float64)
    r = np.arange(size)[:, None, None, None]
    c = np.arange(size)[None, :, None, None]
    m = np.arange(size)[None, None, :, None]
    k = np.arange(size)[None, None, None, :]
    p = np.divide(c, m, out=np.zeros((1, size, size, 1)), where=(m > 0) & (c <= m))
    pmf = choose[r, k] * p**k * (1.0 - p) ** np.maximum(r - k, 0)
    cdf = np.minimum(np.cumsum(np.where(k <= r, pmf, 0.0), axis=3), 1.0)
    cdf = np.where((k >= r) | (m == 0) | (c > m), 1.0, cdf)
    return read_only(np.ascontiguousarray(np.moveaxis(cdf, 3, 0).reshape(size, -1)))


def _table_binomial(
    remaining: IntArray,
    count: IntArray,
    mass: IntArray,
    width: int,
    n_draws: int,
    rng: np.random.Generator,
) -> IntArray:
    """``Binomial(remaining, count / mass)`` draws by CDF inversion, ``(rows, n_draws)``.

    ``count`` and ``mass`` are ``(rows, 1)``; ``remaining`` is ``(rows, n_draws)``
    or ``(rows, 1)`` (the same for every draw: the first step of a chain), all
    at most ``width``. A draw is the number of CDF values at or below a
    uniform ``u`` in [0, 1): the smallest ``k`` with ``u < P(X <= k)``.
    """
    table = binomial_cdf_table(width)
    size = width + 1
    index = remaining * (size * size)
    index += count * size + mass
    u = rng.random((index.shape[0], n_draws))
    drawn = np.zeros(u.shape, dtype=np.uint8)  # width <= TABLE_WIDTH < 256
    below = np.empty(u.shape, dtype=bool)
    for k in range(int(remaining.max(initial=0))):
        np.less_equal(np.take(table[k], index), u, out=below)
        drawn += below
    return drawn.astype(np.int64)


def resampled_moments(
    counts: IntArray, values: FloatArray, n_draws: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Sums and sums of squares of multinomial resamples, each ``(cells, draws)``.

    ``counts``: ``(cells, levels)`` value counts of cells of at most
    :data:`TABLE_WIDTH` values; ``values``: the ``(levels,)`` values. Same
    distribution as summing :func:`resampled_counts`, drawn cell-major with
    :func:`binomial_cdf_table`: each cell's chain runs over the levels it holds
    only, and cells are ordered by how many they hold (most first), so every
    step of the chain works on a leading block of rows without gathering.
    The generator is consumed one ``(cells, draws)`` block of uniforms per
    step, in that order.
    """
    n_cells = counts.shape[0]
    present = counts > 0
    held = present.sum(axis=1)
    order = np.argsort(-held, kind="stable")
    held = held[order]
    width = int(counts.sum(axis=1).max(initial=0))
    if width > TABLE_WIDTH:
        raise ValueError(f"cells of at most {TABLE_WIDTH} values, not {width}")
    # Per cell, its held levels first (in level order): their counts and values.
    rank = np.argsort(~present[order], axis=1, kind="stable")
    step_counts = np.take_along_axis(counts[order], rank, axis=1)
    step_values = values[rank]
    mass = np.cumsum(step_counts[:, ::-1], axis=1)[:, ::-1]
    total = step_counts.sum(axis=1, keepdims=True)
    remaining = np.broadcast_to(total, (n_cells, n_draws)).copy()
    sums = np.zeros((n_cells, n_draws))
    squares = np.zeros((n_cells, n_draws))
    for step in range(int(held.max(initial=0))):
        random = int(np.count_nonzero(held > step + 1))
        last = int(np.count_nonzero(held > step))
        drawn = remaining[:last]
        if random:
            drawn = drawn.copy()
            drawn[:random] = _table_binomial(
                total[:random] if step == 0 else remaining[:random],
                step_counts[:random, step, None],
                mass[:random, step, None],
                width,
                n_draws,
                rng,
            )
            remaining[:random] -= drawn[:random]
        value = step_values[:last, step, None]
        sums[:last] += drawn * value
        squares[:last] += drawn * value**2
    inverse = np.argsort(order)
    return sums[inverse], squares[inverse]

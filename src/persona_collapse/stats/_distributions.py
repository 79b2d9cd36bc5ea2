"""Cell moments from rating distributions (logprob runs) and temperature re-weighting.

A distribution cell holds probabilities over the scale values (MFQ-30: 0..5)
along its last axis. Its mean and population SD (ddof = 0) are exact. A sampled
run with ``n`` repetitions instead reports the ddof = 1 sample SD, whose
expectation is smaller than the population SD; :func:`expected_sample_sd`
computes it exactly by enumerating every multinomial outcome, so logprob and
sampled runs can be compared on the same footing.
"""

from __future__ import annotations

from functools import cache
from math import comb, lgamma

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _normalise(probs: npt.ArrayLike) -> FloatArray:
    p = np.asarray(probs, dtype=np.float64)
    total = p.sum(axis=-1, keepdims=True)
    return np.divide(p, total, out=np.zeros_like(p), where=total > 0)


def distribution_mean(probs: npt.ArrayLike, values: npt.ArrayLike) -> FloatArray:
    """Exact mean rating of each distribution (probabilities renormalised over ``values``)."""
    p = _normalise(probs)
    return np.asarray(p @ np.asarray(values, dtype=np.float64))


def distribution_sd(probs: npt.ArrayLike, values: npt.ArrayLike) -> FloatArray:
    """Exact population SD (ddof = 0) of each distribution."""
    p = _normalise(probs)
    v = np.asarray(values, dtype=np.float64)
    mean = p @ v
    var = p @ (v**2) - mean**2
    return np.asarray(np.sqrt(np.maximum(var, 0.0)))


@cache
def _compositions(n: int, k: int) -> npt.NDArray[np.int64]:
    """Every way to split ``n`` draws over ``k`` categories, shape ``(C(n+k-1, k-1), k)``."""
    if k == 1:
        return np.array([[n]], dtype=np.int64)
    rows = [
        np.column_stack((np.full(len(rest), first, dtype=np.int64), rest))
        for first in range(n, -1, -1)
        for rest in (_compositions(n - first, k - 1),)
    ]
    out = np.vstack(rows)
    assert out.shape[0] == comb(n + k - 1, k - 1)
    return out


def expected_sample_sd(
    probs: npt.ArrayLike, values: npt.ArrayLike, n: int, *, ddof: int = 1, chunk: int = 512
) -> FloatArray:
    """Exact expectation of the ``ddof`` sample SD of ``n`` independent draws from each cell.

    This is the within-cell spread a sampled run with ``n`` repetitions would
    show on average. With ``n <= ddof`` the SD is 0 by convention (as for a cell
    with one rating). Cost grows as C(n + K - 1, K - 1) outcomes per cell
    (3,003 for n = 10 on a 6-point scale).
    """
    p = _normalise(probs)
    shape = p.shape[:-1]
    k = p.shape[-1]
    v = np.asarray(values, dtype=np.float64)
    if n <= ddof:
        return np.zeros(shape)
    comp = _compositions(n, k)
    log_factorial = np.array([lgamma(i + 1) for i in range(n + 1)])
    log_coef = log_factorial[n] - log_factorial[comp].sum(axis=1)
    total = comp @ v
    var = (comp @ (v**2) - total**2 / n) / (n - ddof)
    sd = np.sqrt(np.maximum(var, 0.0))
    flat = p.reshape(-1, k)
    out = np.empty(flat.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, flat.shape[0], chunk):
            log_p = np.log(flat[start : start + chunk])
            # 0 * log(0) must count as 0: an outcome that never draws an impossible value.
            terms = np.where(comp[None, :, :] > 0, comp[None, :, :] * log_p[:, None, :], 0.0)
            prob = np.exp(log_coef[None, :] + terms.sum(axis=2))
            out[start : start + chunk] = prob @ sd
    return out.reshape(shape)


def reweight_temperature(probs: npt.ArrayLike, temperature: float) -> FloatArray:
    """Distributions at temperature ``T`` from those at T = 1: p_T(k) ∝ p_1(k)^(1/T).

    ``T -> 0`` approaches the argmax (ties shared); zero-probability values stay zero.
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    p = _normalise(probs)
    with np.errstate(divide="ignore"):
        logits = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf) / temperature
    top = np.max(logits, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.exp(logits - top)
    return _normalise(w)


def reweight_spellings(
    cell: npt.ArrayLike,
    value_index: npt.ArrayLike,
    logprob: npt.ArrayLike,
    n_cells: int,
    n_values: int,
    temperature: float,
) -> FloatArray:
    """Exact distributions at temperature ``T`` from the T = 1 logprobs of every token spelling.

    Each spelling ``s`` of value ``k`` in cell ``c`` (``"3"``, ``" 3"``) is
    re-weighted on its own, p_T(s) ∝ p_1(s)^(1/T), then summed per value and
    renormalised over the scale: shape ``(n_cells, n_values)``. Re-weighting
    the summed value mass instead is only approximate when a value has
    several spellings.
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    c = np.asarray(cell, dtype=np.int64)
    k = np.asarray(value_index, dtype=np.int64)
    scaled = np.asarray(logprob, dtype=np.float64) / temperature
    top = np.full(n_cells, -np.inf)
    np.maximum.at(top, c, scaled)
    weight = np.exp(scaled - top[c])
    out = np.bincount(c * n_values + k, weights=weight, minlength=n_cells * n_values)
    return _normalise(out.reshape(n_cells, n_values))

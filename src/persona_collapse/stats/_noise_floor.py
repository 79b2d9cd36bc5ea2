"""The noise floor of S and the corrected S: the persona variance component of each item.

S is an SD across personas of cell means, and a cell mean over ``n`` sampled
repetitions carries repetition noise: even personas with no effect at all give
S > 0 (100 personas answering 0..5 uniformly at random, n = 10: S = 0.54).
Read each item as a one-way random-effects model over personas,

    m_pq = mu_q + a_pq + e_pq,   Var(a_pq) = tau_q^2,   Var(e_pq) = sigma_pq^2 / n_pq,

so that E[S_q^2] = tau_q^2 + mean_p sigma_pq^2 / n_pq with S_q the ddof = 1
SD over personas of the cell means. With s2_pq the within-cell variance
(ddof = 1, an unbiased estimate of sigma_pq^2; 0 for a one-rating cell):

- noise floor ``F_q = sqrt(mean_p s2_pq / n_pq)``: the S_q that repetition
  noise alone would give (rating-scale units);
- corrected ``S*_q = sqrt(max(0, S_q^2 - F_q^2))``: the estimated persona
  SD tau_q (the ANOVA estimator of the variance component, truncated at 0);
- overall or per subscale: ``S_noise_floor = mean_q F_q`` and
  ``S_corrected = mean_q S*_q``, averaged like S itself.

Exact cell means (logprob distributions) carry no repetition noise: F = 0 and
S* = S.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._cells import FloatArray


def cell_noise(sds: npt.ArrayLike, counts: npt.ArrayLike) -> FloatArray:
    """Variance of each cell mean from repetition noise, ``s2_pq / n_pq`` (rating units squared).

    ``sds`` are the within-cell SDs with ddof = 1 (0 for a one-rating cell),
    ``counts`` the valid repetitions ``n_pq`` (same shape; cells with no rating give 0).
    """
    s = np.asarray(sds, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    return np.divide(s**2, n, out=np.zeros_like(s), where=n > 0)


def item_noise_floor(noise: npt.ArrayLike) -> FloatArray:
    """``F_q = sqrt(mean_p s2_pq / n_pq)`` per item; axis -2 of ``noise`` is personas."""
    return np.asarray(np.sqrt(np.mean(np.asarray(noise, dtype=np.float64), axis=-2)))


def corrected_susceptibility(S_items: npt.ArrayLike, floor_items: npt.ArrayLike) -> FloatArray:
    """``S*_q = sqrt(max(0, S_q^2 - F_q^2))`` elementwise (works on bootstrap replicates too)."""
    S = np.asarray(S_items, dtype=np.float64)
    F = np.asarray(floor_items, dtype=np.float64)
    return np.asarray(np.sqrt(np.maximum(S**2 - F**2, 0.0)))

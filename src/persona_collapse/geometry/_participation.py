"""The participation ratio: how many dimensions a cloud of points spreads over.

For ``n`` points (rows) in ``d`` dimensions, centred across the points, with
covariance eigenvalues ``λ_i``:

    PR = (Σ λ_i)² / Σ λ_i²

It is 0 when all points coincide, 1 when they lie on a line and ``min(n - 1, d)`` when they spread
equally over every direction they can span. It is scale-free, so the
normalisation of the covariance (1/n or 1/(n - 1)) does not matter. Computed
without an eigendecomposition: with ``C`` the Gram matrix ``X Xᵀ`` (n x n) or
the scatter matrix ``Xᵀ X`` (d x d), whichever is smaller (they share their
non-zero eigenvalues), ``Σ λ = tr C`` and ``Σ λ² = tr(C²) = ‖C‖_F²`` (C is
symmetric).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["max_participation_ratio", "participation_ratio"]

FloatArray = npt.NDArray[np.float64]


def participation_ratio(points: npt.ArrayLike) -> FloatArray:
    """PR of the rows of every matrix in ``points`` (shape ``(..., n, d)``) -> shape ``(...)``.

    Rows are centred on their mean first. All-equal rows (no spread) span no
    dimension: PR 0.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError("points must have shape (..., n_points, n_dims)")
    xc = x - x.mean(axis=-2, keepdims=True)
    n, d = xc.shape[-2:]
    xt = np.swapaxes(xc, -1, -2)
    c = xc @ xt if n <= d else xt @ xc
    trace = np.trace(c, axis1=-2, axis2=-1)
    squares = np.square(c).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(squares > 0, trace**2 / np.where(squares > 0, squares, 1.0), 0.0)
    return np.asarray(out, dtype=np.float64)


def max_participation_ratio(n_points: int, n_dims: int) -> int:
    """The largest PR ``n_points`` centred points in ``n_dims`` dimensions can reach."""
    return max(0, min(int(n_points) - 1, int(n_dims)))

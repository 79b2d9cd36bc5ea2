"""The repetition bootstrap's table sampler draws exact multinomial resamples."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from persona_collapse.stats import BootstrapConfig
from persona_collapse.stats import _bootstrap as bootstrap
from persona_collapse.stats import _resample as resample


def test_cdf_table_is_the_binomial_cdf() -> None:
    width = 10
    table = resample.binomial_cdf_table(width)
    size = width + 1
    for r, c, m in [(10, 3, 10), (7, 1, 4), (4, 4, 9), (1, 1, 2), (0, 2, 5), (10, 9, 10)]:
        p = c / m
        cdf = np.cumsum([comb(r, k) * p**k * (1 - p) ** (r - k) for k in range(r + 1)])
        got = table[:, (r * size + c) * size + m]
        np.testing.assert_allclose(got[:r], cdf[:r], rtol=1e-12, atol=1e-15)
        assert np.all(got[r:] == 1.0)


def _cells() -> tuple[np.ndarray, np.ndarray]:
    counts = np.array(
        [[3, 7, 0, 0], [0, 0, 10, 0], [1, 2, 3, 4], [0, 5, 0, 1], [2, 0, 0, 0], [1, 1, 1, 1]],
        dtype=np.int64,
    )
    return counts, np.array([0.0, 1.0, 3.0, 5.0])


def test_resampled_sums_have_the_multinomial_mean_and_variance() -> None:
    counts, values = _cells()
    sums, squares = resample.resampled_moments(counts, values, 40_000, np.random.default_rng(2))
    assert sums.shape == squares.shape == (6, 40_000)
    n = counts.sum(axis=1)
    mean = counts @ values / n
    pop_var = counts @ values**2 / n - mean**2
    np.testing.assert_allclose(sums.mean(axis=1), n * mean, rtol=0.01, atol=0.02)
    np.testing.assert_allclose(sums.var(axis=1), n * pop_var, rtol=0.04, atol=1e-12)
    assert np.all(sums[1] == 30.0) and np.all(squares[1] == 90.0)
    # Every resample holds the cell's n ratings, each one of the values the cell holds.
    assert np.all(squares >= sums**2 / n[:, None] - 1e-9)


def test_table_and_binomial_samplers_agree_in_distribution() -> None:
    counts, values = _cells()
    sums, _ = resample.resampled_moments(counts, values, 40_000, np.random.default_rng(3))
    chain = resample.resampled_counts(counts, 40_000, np.random.default_rng(4)) @ values
    np.testing.assert_allclose(sums.var(axis=1), chain.var(axis=0), rtol=0.05)


def test_fixed_seed_repeats_and_wide_cells_use_the_binomial_chain() -> None:
    rng = np.random.default_rng(0)
    ratings = rng.integers(0, 6, size=(20, 30, 40)).astype(float)
    means = ratings.mean(axis=2)
    sds = ratings.std(axis=2, ddof=1)
    groups = np.ones((30, 1)) / 30
    cfg = BootstrapConfig(persona_draws=10, repetition_draws=50, seed=5)
    first = bootstrap.repetition_bootstrap(ratings, means, sds, groups, cfg)
    again = bootstrap.repetition_bootstrap(ratings, means, sds, groups, cfg)
    np.testing.assert_array_equal(first.S, again.S)
    assert ratings.shape[2] > resample.TABLE_WIDTH
    assert np.std(first.sigma_bar[:, 0]) > 0
    with pytest.raises(ValueError, match="at most"):
        resample.resampled_moments(np.array([[40, 1]]), np.array([0.0, 1.0]), 2, rng)

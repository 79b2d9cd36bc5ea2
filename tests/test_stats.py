"""Estimators against brute-force computations on small synthetic data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from persona_collapse.errors import DataError
from persona_collapse.stats import (
    BootstrapConfig,
    RatingCube,
    coefficient_of_variation,
    distribution_mean,
    distribution_sd,
    expected_sample_sd,
    measure,
    measure_distributions,
    misalignment_excess,
    persona_profile,
    relative_change,
    reweight_temperature,
    saturation,
    self_profile,
)

VALUES = np.arange(6)


def _long(ratings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, q, n = ratings.shape
    pid, iid, _ = np.meshgrid(np.arange(p), np.arange(1, q + 1), np.arange(n), indexing="ij")
    return pid.ravel(), iid.ravel(), ratings.ravel()


def _pandas_reference(
    pid: np.ndarray, iid: np.ndarray, rat: np.ndarray, ddof: int = 1
) -> tuple[float, float]:
    df = pd.DataFrame({"p": pid, "q": iid, "r": rat})
    df = df[df.r != -1]
    cells = df.groupby(["p", "q"]).r.agg(["mean", lambda x: x.std(ddof=1) if len(x) > 1 else 0.0])
    cells.columns = ["m", "s"]
    S = cells.m.unstack().std(axis=0, ddof=ddof).mean()
    return float(S), float(cells.s.mean())


def test_measure_matches_pandas_groupby() -> None:
    rng = np.random.default_rng(1)
    ratings = rng.integers(0, 6, size=(12, 10, 5)).astype(float)
    pid, iid, rat = _long(ratings)
    cube = RatingCube.from_long(pid, iid, rat)
    subs = np.arange(10) % 5
    m = measure(cube, subs, list("abcde"), BootstrapConfig(persona_draws=50, repetition_draws=20))
    S, sigma = _pandas_reference(pid, iid, rat)
    assert m.S[0] == pytest.approx(S, rel=1e-12)
    assert m.sigma_bar[0] == pytest.approx(sigma, rel=1e-12)
    assert m.R[0] == pytest.approx(1 / sigma, rel=1e-12)
    for f in range(5):
        keep = np.isin(iid, np.flatnonzero(subs == f) + 1)
        S_f, sigma_f = _pandas_reference(pid[keep], iid[keep], rat[keep])
        assert m.S[1 + f] == pytest.approx(S_f, rel=1e-12)
        assert m.sigma_bar[1 + f] == pytest.approx(sigma_f, rel=1e-12)


def test_ddof_zero_is_population_sd() -> None:
    rng = np.random.default_rng(2)
    ratings = rng.integers(0, 6, size=(7, 5, 3)).astype(float)
    cube = RatingCube.from_long(*_long(ratings))
    cfg = BootstrapConfig(persona_draws=10, repetition_draws=0, ddof=0)
    m = measure(cube, np.zeros(5, dtype=int), ["x"], cfg)
    assert m.S[0] == pytest.approx(_pandas_reference(*_long(ratings), ddof=0)[0], rel=1e-12)
    assert m.repetition_draws is not None


def test_missing_ratings_and_drop_rule() -> None:
    ratings = np.full((3, 2, 4), 3.0)
    ratings[0, 0, :3] = -1  # one valid rating left: kept, SD 0
    ratings[1, 1, :] = -1  # empty cell: persona 1 dropped
    ratings[2, 0] = [1, 2, 3, 4]
    cube = RatingCube.from_long(*_long(ratings))
    assert cube.persona_ids.tolist() == [0, 2]
    assert cube.dropped_persona_ids.tolist() == [1]
    assert cube.counts.tolist() == [[1, 4], [4, 4]]
    m = measure(
        cube, np.zeros(2, dtype=int), ["x"], BootstrapConfig(persona_draws=5, repetition_draws=5)
    )
    assert m.sigma_bar[0] == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 4)


def test_uneven_repetitions_are_all_used() -> None:
    pid = np.array([0] * 15 + [1] * 10)
    iid = np.ones(25, dtype=int)
    rat = np.concatenate([np.tile([2.0, 3.0, 4.0], 5), np.full(10, 1.0)])
    cube = RatingCube.from_long(pid, iid, rat)
    assert cube.ratings.shape == (2, 1, 15)
    assert cube.counts.tolist() == [[15], [10]]


def test_no_complete_persona_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no persona"):
        RatingCube.from_long([0, 0], [1, 2], [-1, 3], items=[1, 2])


def test_bootstrap_is_deterministic_and_seed_dependent() -> None:
    rng = np.random.default_rng(3)
    cube = RatingCube.from_long(*_long(rng.integers(0, 6, size=(20, 5, 4)).astype(float)))
    subs = np.arange(5) % 5
    a = measure(cube, subs, list("abcde"), BootstrapConfig(seed=7))
    b = measure(cube, subs, list("abcde"), BootstrapConfig(seed=7))
    c = measure(cube, subs, list("abcde"), BootstrapConfig(seed=8))
    assert np.array_equal(a.S_se, b.S_se) and np.array_equal(a.R_se, b.R_se)
    assert not np.array_equal(a.S_se, c.S_se)
    assert a.values().R_se == pytest.approx(a.values().sigma_bar_se / a.values().sigma_bar ** 2)


def test_persona_bootstrap_matches_explicit_resampling() -> None:
    """The count-matrix bootstrap equals resampling persona rows explicitly."""
    rng = np.random.default_rng(4)
    cube = RatingCube.from_long(*_long(rng.integers(0, 6, size=(30, 4, 3)).astype(float)))
    m = measure(
        cube, np.zeros(4, dtype=int), ["x"], BootstrapConfig(persona_draws=400, repetition_draws=0)
    )
    means = np.nanmean(cube.ratings, axis=2)
    draws = [np.std(means[rng.integers(0, 30, 30)], axis=0, ddof=1).mean() for _ in range(4000)]
    assert m.S_se[0] == pytest.approx(np.std(draws, ddof=1), rel=0.12)


def _brute_expected_sd(p: np.ndarray, n: int) -> float:
    total = 0.0
    for outcome in itertools.product(range(6), repeat=n):
        prob = float(np.prod(p[list(outcome)]))
        if prob:
            total += prob * float(np.std(outcome, ddof=1))
    return total


def test_exact_moments_match_enumeration() -> None:
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.25, 0.1])
    assert distribution_mean(p, VALUES) == pytest.approx(float(p @ VALUES))
    brute_var = sum(pk * (k - p @ VALUES) ** 2 for k, pk in enumerate(p))
    assert distribution_sd(p, VALUES) == pytest.approx(np.sqrt(brute_var))
    for n in (2, 3, 4):
        assert expected_sample_sd(p, VALUES, n) == pytest.approx(
            _brute_expected_sd(p, n), rel=1e-12
        )
    sparse = np.array([0.0, 0.0, 0.5, 0.5, 0.0, 0.0])
    assert expected_sample_sd(sparse, VALUES, 3) == pytest.approx(
        _brute_expected_sd(sparse, 3), rel=1e-12
    )
    assert expected_sample_sd(p, VALUES, 1) == 0.0


def test_expected_sd_approaches_population_sd() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.2, 0.1, 0.1])
    small, large = expected_sample_sd(p, VALUES, 3), expected_sample_sd(p, VALUES, 12)
    assert small < large < distribution_sd(p, VALUES)


def test_temperature_reweighting_matches_direct_softmax() -> None:
    logits = np.array([0.3, -1.2, 2.0, 0.7, -0.4, 1.1])
    p1 = np.exp(logits) / np.exp(logits).sum()
    for T in (0.1, 0.5, 2.0):
        direct = np.exp(logits / T) / np.exp(logits / T).sum()
        assert reweight_temperature(p1, T) == pytest.approx(direct, rel=1e-10)
    with_zero = np.array([0.0, 0.5, 0.5, 0, 0, 0])
    assert reweight_temperature(with_zero, 0.2)[0] == 0.0


def test_measure_distributions_uses_exact_moments() -> None:
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(6), size=(8, 5))
    m = measure_distributions(
        probs,
        VALUES,
        np.zeros(5, dtype=int),
        ["x"],
        persona_ids=np.arange(8),
        item_ids=np.arange(1, 6),
        config=BootstrapConfig(persona_draws=50),
    )
    means = probs @ VALUES
    assert m.S[0] == pytest.approx(np.std(means, axis=0, ddof=1).mean(), rel=1e-12)
    assert m.sigma_bar[0] == pytest.approx(distribution_sd(probs, VALUES).mean(), rel=1e-12)
    n10 = measure_distributions(
        probs,
        VALUES,
        np.zeros(5, dtype=int),
        ["x"],
        persona_ids=np.arange(8),
        item_ids=np.arange(1, 6),
        n_repetitions=10,
        config=BootstrapConfig(persona_draws=50),
    )
    assert n10.sigma_bar[0] < m.sigma_bar[0]
    assert m.repetition_draws is None and m.S_se[0] > 0


def test_relative_change_and_excess() -> None:
    rng = np.random.default_rng(6)
    subs = np.arange(10) % 5
    cfg = BootstrapConfig(persona_draws=300, repetition_draws=50)
    base = measure(
        RatingCube.from_long(*_long(rng.integers(1, 5, size=(40, 10, 5)).astype(float))),
        subs,
        list("abcde"),
        cfg,
    )
    noisy = measure(
        RatingCube.from_long(*_long(rng.integers(0, 6, size=(40, 10, 5)).astype(float))),
        subs,
        list("abcde"),
        cfg,
    )
    same = measure(
        RatingCube.from_long(*_long(rng.integers(1, 5, size=(40, 10, 5)).astype(float))),
        subs,
        list("abcde"),
        cfg,
    )
    ch = relative_change(base, noisy)
    delta, se = ch.at()
    assert delta["sigma_bar"] == pytest.approx((noisy.sigma_bar[0] / base.sigma_bar[0] - 1) * 100)
    assert delta["R"] == pytest.approx((base.sigma_bar[0] / noisy.sigma_bar[0] - 1) * 100)
    assert all(v > 0 for v in se.values())
    excess = misalignment_excess(ch, relative_change(base, same))
    ex, ex_se = excess.at()
    assert ex["S"] == pytest.approx(delta["S"] - relative_change(base, same).at()[0]["S"])
    assert all(v > 0 for v in ex_se.values())


def test_profiles_saturation_and_cv() -> None:
    ratings = np.zeros((1, 10, 4))
    ratings[0, :, :] = [[5, 5, 4, 5]] * 10
    cube = RatingCube.from_long(np.full(40, -1), *_long(ratings)[1:])
    prof = self_profile(cube, np.arange(10) % 5, list("abcde"))
    assert prof["a"].mean == pytest.approx(4.75)
    assert prof["a"].sd == pytest.approx(np.std([5, 5, 4, 5], ddof=1))
    assert saturation(prof, 0, 5)["a"] == pytest.approx(0.95)
    personas = np.stack([np.full((10, 2), k, dtype=float) for k in (1, 2, 3)])
    pp = persona_profile(RatingCube.from_long(*_long(personas)), np.arange(10) % 5, list("abcde"))
    assert pp["c"].mean == pytest.approx(2.0) and pp["c"].sd == pytest.approx(1.0)
    assert coefficient_of_variation([1, 1, 1]) == 0.0
    assert coefficient_of_variation([1, 3]) == pytest.approx(0.5)


def test_constant_cells_have_zero_repetition_noise() -> None:
    ratings = np.stack([np.full((3, 4), k, dtype=float) for k in (1, 2, 4)])
    m = measure(RatingCube.from_long(*_long(ratings)), np.zeros(3, dtype=int), ["x"])
    assert m.sigma_bar[0] == 0.0
    assert m.repetition_draws is not None
    assert np.allclose(m.repetition_draws.S, m.S[0], rtol=1e-12)


def test_spelling_reweighting_is_exact_per_token() -> None:
    """Digits spelled by several tokens re-weight per token, as sampling at T does."""
    from persona_collapse.stats import reweight_spellings

    rng = np.random.default_rng(9)
    token_logits = rng.normal(size=12)  # 6 values x 2 spellings, uneven splits
    value_of_token = np.repeat(np.arange(6), 2)
    logp1 = token_logits - np.log(np.exp(token_logits).sum())
    for T in (0.1, 0.7, 2.0):
        tokens_T = np.exp(token_logits / T) / np.exp(token_logits / T).sum()
        direct = np.bincount(value_of_token, weights=tokens_T, minlength=6)
        got = reweight_spellings(np.zeros(12, dtype=int), value_of_token, logp1, 1, 6, T)[0]
        assert got == pytest.approx(direct, rel=1e-10)
        summed = np.bincount(value_of_token, weights=np.exp(logp1), minlength=6)
        if T != 1:
            assert not np.allclose(reweight_temperature(summed, T), direct, rtol=1e-6)

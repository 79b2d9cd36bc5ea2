"""The repetition bootstrap works through its draws in chunks of bounded size."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from persona_collapse.stats import BootstrapConfig, RatingCube, measure
from persona_collapse.stats import _bootstrap as bootstrap


def _cube(n_personas: int, seed: int = 0) -> RatingCube:
    rng = np.random.default_rng(seed)
    profile = rng.uniform(0.5, 4.5, size=(n_personas, 30))
    ratings = np.clip(np.rint(profile[:, :, None] + rng.normal(0, 0.8, (n_personas, 30, 10))), 0, 5)
    p, q, _ = np.meshgrid(np.arange(n_personas), np.arange(1, 31), np.arange(10), indexing="ij")
    return RatingCube.from_long(p.ravel(), q.ravel(), ratings.ravel())


def _repetition_se_and_peak(cube: RatingCube) -> tuple[float, int]:
    cfg = BootstrapConfig(persona_draws=2, repetition_draws=200, seed=3)
    tracemalloc.start()
    try:
        m = measure(cube, np.zeros(30, dtype=np.int64), ["all"], cfg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return float(np.std(m.repetition_draws.S[:, 0], ddof=1)), peak


def test_chunks_bound_the_peak_memory_and_keep_the_standard_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cube = _cube(400)
    se_whole, peak_whole = _repetition_se_and_peak(cube)
    monkeypatch.setattr(bootstrap, "CHUNK_ELEMENTS", 200_000)
    se_chunked, peak_chunked = _repetition_se_and_peak(cube)
    assert peak_chunked < peak_whole / 3
    assert se_chunked == pytest.approx(se_whole, rel=0.2)


def test_one_chunk_gives_the_same_draws_as_before() -> None:
    cube = _cube(50)
    cfg = BootstrapConfig(persona_draws=10, repetition_draws=40, seed=1)
    groups = np.ones((30, 1)) / 30
    means = np.nanmean(cube.ratings, axis=2)
    sds = np.nan_to_num(np.nanstd(cube.ratings, axis=2, ddof=1))
    first = bootstrap.repetition_bootstrap(cube.ratings, means, sds, groups, cfg)
    again = bootstrap.repetition_bootstrap(cube.ratings, means, sds, groups, cfg)
    np.testing.assert_array_equal(first.S, again.S)
    assert bootstrap._draw_chunks(400, 30 * 100 * 6) == [400]
    assert bootstrap._draw_chunks(10, 3) == [10]
    assert sum(bootstrap._draw_chunks(400, 5000 * 30 * 6)) == 400

"""Bootstraps of the task readouts: two-level SEs and paired variant-vs-base deltas.

The answers of a task source are :class:`AnswerTable` counts (items x answer
levels, see :mod:`._instability`). Two resampling levels:

* **items**, with replacement, optionally *stratified*: items are resampled
  within each stratum (MMLU: its subject), so the stratum mix stays fixed;
  drawn as counts per item, ``(draws, items)``;
* **repetitions** within each item: a multinomial draw of the item's answer
  counts (a chain of binomials, exact), ``(draws, items, levels)``.

:func:`task_bootstrap` gives the SE of each statistic from item draws (answers
fixed) and from repetition draws (items fixed) separately, and both combined
in quadrature, ``se = sqrt(se_item**2 + se_rep**2)``; SEs are the ddof = 1
SD of the replicates. It works on the parsed rows: unparsed rows are not
resampled. :func:`paired_task_deltas` resamples the same items on both sides
of a comparison and each side's repetitions independently (unparsed rows
included, so ``accuracy_all`` is resampled as it is defined); intervals are
the 2.5 / 97.5 percentiles of the differences variant - base.

Seeds: item draws ``[seed, 0]`` (the same for every source, so sources on the
same items are resampled alike), repetition draws ``[seed, 1, stream]``;
paired deltas ``[seed, 2]`` for items and ``[seed, 3, side]`` for repetitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._bootstrap import BootstrapConfig, _draw_chunks
from ._instability import BoolArray, FloatArray, answer_statistics
from ._resample import resampled_counts

IntArray = npt.NDArray[np.int64]

SE_STATISTICS = {
    "accuracy": "accuracy_valid",
    "non_unanimity": "non_unanimity_rate",
    "gini": "mean_gini",
}
"""SE name prefix -> the statistic it is the SE of (the bootstrap runs on parsed rows)."""

DELTA_STATISTICS = {
    "accuracy": "accuracy_all",
    "non_unanimity": "non_unanimity_rate",
    "gini": "mean_gini",
}
"""Delta name -> the statistic differenced (accuracy over all rows: unparsed counts wrong)."""

CHUNK_ELEMENTS = 2_000_000
"""Most (draw, item, level) elements resampled at once: memory stays flat (tens of MB)."""

DELTA_DRAWS = 10_000
"""Paired bootstrap draws of a delta's percentile interval (the authors': 10,000)."""


@dataclass(frozen=True)
class AnswerTable:
    """Answer counts of one task source, one row per item (ascending ``item_ids``).

    ``counts[i, j]``: parsed answers of item ``i`` equal to its ``j``-th answer
    in lexicographic order (zero-padded); ``correct[i, j]``: whether that
    answer is correct; ``unparsed[i]``: the item's rows without a parsed
    answer; ``strata[i]``: its stratum index (all 0: no stratification).
    """

    item_ids: IntArray
    counts: FloatArray
    correct: BoolArray
    unparsed: FloatArray
    strata: IntArray

    def statistics(self) -> dict[str, float]:
        """The point values of every statistic of :func:`answer_statistics`."""
        return {k: float(v) for k, v in answer_statistics(*self._arrays()).items()}

    def _arrays(self) -> tuple[FloatArray, BoolArray, FloatArray]:
        return self.counts, self.correct, self.unparsed

    def take(self, keep: BoolArray | IntArray) -> AnswerTable:
        """The table restricted to items ``keep`` (a mask or positions)."""
        return AnswerTable(
            self.item_ids[keep],
            self.counts[keep],
            self.correct[keep],
            self.unparsed[keep],
            self.strata[keep],
        )


def item_weights(strata: IntArray, n_draws: int, rng: np.random.Generator) -> FloatArray:
    """Bootstrap counts ``(draws, items)`` of items resampled with replacement within strata.

    Each item's slot is filled by an item drawn uniformly from its own
    stratum, so every replicate keeps each stratum's size.
    """
    n = strata.size
    order = np.argsort(strata, kind="stable")
    sizes = np.bincount(strata)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    slot_stratum = strata[order]
    picks = np.floor(rng.random((n_draws, n)) * sizes[slot_stratum]).astype(np.int64)
    chosen = order[starts[slot_stratum] + picks]
    flat = (np.arange(n_draws)[:, None] * n + chosen).ravel()
    return np.bincount(flat, minlength=n_draws * n).reshape(n_draws, n).astype(np.float64)


def _sd(replicates: FloatArray) -> float:
    finite = replicates[np.isfinite(replicates)]
    return float(np.std(finite, ddof=1)) if finite.size > 1 else float("nan")


def task_bootstrap(table: AnswerTable, config: BootstrapConfig) -> dict[str, float]:
    """Two-level bootstrap SEs: ``{name}_se``, ``{name}_se_item``, ``{name}_se_rep`` for every
    name of :data:`SE_STATISTICS`, over the items with at least one parsed answer.

    ``config.persona_draws`` item draws (published: 2,000) and
    ``config.repetition_draws`` repetition draws (published: 400; 0: the
    repetition SE is 0).
    """
    parsed = table.take(table.counts.sum(axis=1) > 0)
    counts, correct, unparsed = parsed._arrays()
    item_rng = np.random.default_rng([config.seed, 0])
    weights = item_weights(parsed.strata, config.persona_draws, item_rng)
    by_items = answer_statistics(counts, correct, unparsed, weights)
    rng = np.random.default_rng([config.seed, 1, config.stream])
    by_reps: dict[str, list[FloatArray]] = {k: [] for k in SE_STATISTICS.values()}
    for size in _draw_chunks(config.repetition_draws, counts.size, CHUNK_ELEMENTS):
        drawn = resampled_counts(counts.astype(np.int64), size, rng)
        stats = answer_statistics(drawn, correct, unparsed)
        for key in by_reps:
            by_reps[key].append(stats[key])
    out: dict[str, float] = {}
    for name, key in SE_STATISTICS.items():
        item_se = _sd(by_items[key])
        rep_se = _sd(np.concatenate(by_reps[key])) if by_reps[key] else 0.0
        out[f"{name}_se"] = float(np.hypot(item_se, rep_se))
        out[f"{name}_se_item"] = item_se
        out[f"{name}_se_rep"] = rep_se
    return out


def _with_unparsed(table: AnswerTable) -> tuple[IntArray, BoolArray]:
    """Counts with the unparsed rows as one more (never correct) level, for resampling all rows."""
    full = np.concatenate([table.counts, table.unparsed[:, None]], axis=1).astype(np.int64)
    correct = np.concatenate([table.correct, np.zeros((table.correct.shape[0], 1), bool)], axis=1)
    return full, correct


def _side_statistics(
    full: IntArray, correct: BoolArray, weights: FloatArray, rng: np.random.Generator
) -> dict[str, FloatArray]:
    drawn = resampled_counts(full, weights.shape[0], rng)
    return answer_statistics(drawn[..., :-1], correct[:, :-1], drawn[..., -1], weights)


def paired_task_deltas(
    base: AnswerTable,
    variant: AnswerTable,
    *,
    draws: int = DELTA_DRAWS,
    seed: int = 0,
    side: int = 1,
    stratify: bool = False,
) -> dict[str, float | bool | int]:
    """Variant - base differences of :data:`DELTA_STATISTICS` over the items both share,
    with paired percentile intervals.

    Returns ``n_items`` (shared items) and, per name, the point difference,
    ``{name}_lo`` / ``{name}_hi`` (2.5 / 97.5 percentiles of ``draws`` paired
    replicates: the same resampled items on both sides, repetitions resampled
    within item independently per side) and ``{name}_sig`` (the interval
    excludes 0). ``side`` separates the repetition stream of each variant
    compared with the same base. Items are resampled without strata, as the
    authors' deltas are (their intervals are reproduced so; stratifying by
    subject narrows MMLU's by about a tenth); ``stratify`` uses the base's strata.
    """
    shared = np.intersect1d(base.item_ids, variant.item_ids)
    b = base.take(np.isin(base.item_ids, shared))
    v = variant.take(np.isin(variant.item_ids, shared))
    points_b, points_v = b.statistics(), v.statistics()
    strata = b.strata if stratify else np.zeros_like(b.strata)
    item_rng = np.random.default_rng([seed, 2])
    rngs = (np.random.default_rng([seed, 3, 0]), np.random.default_rng([seed, 3, side]))
    sides = (_with_unparsed(b), _with_unparsed(v))
    diffs: dict[str, list[FloatArray]] = {k: [] for k in DELTA_STATISTICS}
    per_draw = max(x[0].size for x in sides)
    for size in _draw_chunks(draws, per_draw, CHUNK_ELEMENTS):
        weights = item_weights(strata, size, item_rng)
        stats = [_side_statistics(f, c, weights, r) for (f, c), r in zip(sides, rngs, strict=True)]
        for name, key in DELTA_STATISTICS.items():
            diffs[name].append(stats[1][key] - stats[0][key])
    out: dict[str, float | bool | int] = {"n_items": int(shared.size)}
    for name, key in DELTA_STATISTICS.items():
        values = np.concatenate(diffs[name]) if diffs[name] else np.zeros(0)
        values = values[np.isfinite(values)]
        lo, hi = np.percentile(values, [2.5, 97.5]) if values.size else (np.nan, np.nan)
        out[name] = points_v[key] - points_b[key]
        out[f"{name}_lo"], out[f"{name}_hi"] = float(lo), float(hi)
        out[f"{name}_sig"] = bool(lo > 0 or hi < 0)
    return out

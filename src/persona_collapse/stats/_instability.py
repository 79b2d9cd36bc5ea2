"""Repeat instability and accuracy from answer counts per cell (numpy, vectorised).

A *cell* is what is asked repeatedly under identical conditions: a task item,
or a (persona, item) pair of a questionnaire (self mode: an item). Its answers
are summarised as counts per distinct answer, ``counts[..., cell, level]``,
with the levels of each cell in lexicographic order of the answer strings
(padded with zero counts); leading axes are bootstrap draws.

Conventions (the authors' capability control, Costa & Vicente 2026):

* a cell counts for instability when it holds at least
  :data:`MIN_REPEATS` answers; it is *non-unanimous* when they are not all
  identical; its Gini impurity is ``1 - sum_j share_j**2`` (dimensionless, 0
  for a unanimous cell, at most ``1 - 1/k`` with ``k`` possible answers);
* accuracy over valid rows is correct parsed answers / parsed answers, over
  all rows correct / (parsed + unparsed), an unparsed row counting wrong;
* the majority answer of a cell is its modal answer, ties going to the
  lexicographically smallest answer string (the lowest level); it is correct
  when any row with that answer is correct.

Every mean over cells takes per-cell weights (a bootstrap's resample counts;
ones for the point values), so point values and replicates share one formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MIN_REPEATS = 2
"""Fewest answers a cell needs to count for non-unanimity, Gini impurity and distinct answers."""

TASK_STATISTICS = (
    "accuracy_all",
    "accuracy_valid",
    "majority_accuracy",
    "non_unanimity_rate",
    "mean_gini",
    "mean_distinct_answers",
)
"""What :func:`answer_statistics` returns, by name."""


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """``numerator / denominator`` elementwise, NaN where the denominator is 0."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    return np.asarray(np.divide(num, den, out=out, where=den > 0), dtype=np.float64)


def cell_gini(counts: FloatArray) -> FloatArray:
    """Gini impurity ``1 - sum_j (n_j / n)**2`` of every cell (last axis: levels); 0 when empty."""
    n = counts.sum(axis=-1)
    shares = _ratio(counts, n[..., None])
    return np.where(n > 0, 1.0 - np.nansum(shares**2, axis=-1), 0.0)


def answer_statistics(
    counts: FloatArray,
    correct: BoolArray,
    unparsed: FloatArray,
    weights: FloatArray | None = None,
) -> dict[str, FloatArray]:
    """The readouts of :data:`TASK_STATISTICS` from answer counts, one value per leading index.

    ``counts``: ``(..., cells, levels)`` parsed answers per level; ``correct``:
    ``(cells, levels)`` whether a level's answer is correct; ``unparsed``:
    ``(..., cells)`` rows without a parsed answer (counted wrong by
    ``accuracy_all``); ``weights``: ``(..., cells)`` how often each cell is
    taken (default one each). Rates are shares in [0, 1]; a mean over no
    eligible cell is NaN.
    """
    counts = np.asarray(counts, dtype=np.float64)
    w = np.ones(counts.shape[:-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    n = counts.sum(axis=-1)
    hits = np.sum(counts * correct, axis=-1)
    answered = n > 0
    eligible = w * (n >= MIN_REPEATS)
    distinct = np.sum(counts > 0, axis=-1)
    majority_correct = np.take_along_axis(
        np.broadcast_to(correct, counts.shape), np.argmax(counts, axis=-1)[..., None], axis=-1
    )[..., 0]
    return {
        "accuracy_all": _ratio(np.sum(w * hits, -1), np.sum(w * (n + unparsed), -1)),
        "accuracy_valid": _ratio(np.sum(w * hits, -1), np.sum(w * n, -1)),
        "majority_accuracy": _ratio(
            np.sum(w * (answered & majority_correct), -1), np.sum(w * answered, -1)
        ),
        "non_unanimity_rate": _ratio(np.sum(eligible * (distinct > 1), -1), eligible.sum(-1)),
        "mean_gini": _ratio(np.sum(eligible * cell_gini(counts), -1), eligible.sum(-1)),
        "mean_distinct_answers": _ratio(np.sum(eligible * distinct, -1), eligible.sum(-1)),
    }


@dataclass(frozen=True)
class Instability:
    """Repeat instability of a set of cells (see the module doc for the conventions).

    ``non_unanimity_rate``: share of cells whose answers are not all identical;
    ``mean_gini``: mean Gini impurity; ``mean_gini_norm``: that divided by its
    maximum ``1 - 1/k`` (``k`` possible answers; NaN when ``k`` is not fixed,
    e.g. free numeric answers); ``n_cells``: cells with at least
    :data:`MIN_REPEATS` answers, over which all means are taken;
    ``mean_reps``: their mean number of answers.
    """

    non_unanimity_rate: float
    mean_gini: float
    mean_gini_norm: float
    n_cells: int
    mean_reps: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "non_unanimity_rate": self.non_unanimity_rate,
            "mean_gini": self.mean_gini,
            "mean_gini_norm": self.mean_gini_norm,
            "n_cells": self.n_cells,
            "mean_reps": self.mean_reps,
        }


def instability(counts: FloatArray, n_answers: int | None = None) -> Instability:
    """:class:`Instability` of ``(cells, levels)`` answer counts; ``n_answers``: the ``k`` of
    ``mean_gini_norm`` (None: no fixed answer set, ``mean_gini_norm`` NaN)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(axis=-1)
    eligible = n >= MIN_REPEATS
    if not eligible.any():
        nan = float("nan")
        return Instability(nan, nan, nan, 0, nan)
    kept = counts[eligible]
    gini = float(cell_gini(kept).mean())
    norm = gini / (1.0 - 1.0 / n_answers) if n_answers and n_answers > 1 else float("nan")
    return Instability(
        non_unanimity_rate=float(np.mean(np.sum(kept > 0, axis=-1) > 1)),
        mean_gini=gini,
        mean_gini_norm=norm,
        n_cells=int(eligible.sum()),
        mean_reps=float(n[eligible].mean()),
    )


def level_counts(values: FloatArray, levels: FloatArray) -> FloatArray:
    """Counts of each of ``levels`` along the last axis of ``values`` (NaN padding ignored):
    ``(..., reps)`` -> ``(..., levels)``, e.g. a rating cube's cells' counts per scale value."""
    return np.asarray(
        (np.asarray(values)[..., None] == np.asarray(levels)).sum(axis=-2), dtype=np.float64
    )

"""How many token positions the ``hf/`` engine computes per forward pass, chosen by measurement.

A larger forward pass amortises the per-layer Python and kernel-launch cost;
a smaller one keeps the activations in the processor's caches and avoids
fresh page-faulted allocations. Where the best size lies depends on the
machine, the model and what else runs, so :class:`ForwardBudget` measures
it: it tries each candidate budget (positions per forward) that the
batches can fill, largest first (stopping at the first smaller size whose
passes are slower than the size above it), then keeps the one with the highest
throughput (real positions per second), and every ``revisit`` passes tries a
neighbour of the best again so that a change of load is noticed.

A pass is scored in its size class (the smallest candidate holding the
positions it computed), whatever budget it was cut under: a batch's short
remainder counts for the small class it is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DEFAULT_BUDGETS", "ForwardBudget", "split_by_budget"]

#: Candidate positions per forward pass, smallest first.
DEFAULT_BUDGETS = (1024, 2048, 4096, 8192, 16384)


def split_by_budget(sizes: Sequence[int], budget: int) -> list[range]:
    """Cut rows of ``sizes`` positions into the fewest consecutive runs of about equal total,
    each near ``budget`` positions or less (a row larger than the budget alone).

    Runs keep the order of ``sizes`` (callers sort prompts so that a persona's
    stay together); a batch within the budget is one run.
    """
    n = len(sizes)
    if n == 0:
        return []
    cumulative = np.cumsum(np.asarray(sizes, dtype=np.int64))
    parts = min(n, max(1, math.ceil(int(cumulative[-1]) / max(int(budget), 1))))
    targets = cumulative[-1] * np.arange(1, parts) / parts
    cuts = np.unique(np.clip(np.searchsorted(cumulative, targets, side="left") + 1, 1, n - 1))
    edges = [0, *cuts.tolist(), n] if parts > 1 else [0, n]
    return [range(a, b) for a, b in itertools.pairwise(edges) if b > a]


@dataclass
class _Score:
    rate: float = 0.0  # positions per second, exponentially weighted
    passes: int = 0

    def add(self, rate: float, weight: float) -> None:
        self.rate = rate if self.passes == 0 else (1 - weight) * self.rate + weight * rate
        self.passes += 1


@dataclass
class ForwardBudget:
    """Positions per forward pass, tuned from measured throughput (see the module docs).

    ``candidates``: budgets (size classes) to try, smallest first; ``trials``:
    passes per class before the best is chosen; ``revisit``: passes between
    retrying a neighbour of the best; ``weight``: weight of the newest pass in
    a class's rate; ``fixed``: a budget to use without tuning.
    """

    candidates: Sequence[int] = DEFAULT_BUDGETS
    trials: int = 1
    revisit: int = 40
    weight: float = 0.5
    fixed: int | None = None
    _scores: dict[int, _Score] = field(default_factory=dict)
    _asked: dict[int, int] = field(default_factory=dict)
    _trying: int | None = None
    _since: int = 0
    _flip: int = 0
    _exploring: bool = True

    def __post_init__(self) -> None:
        if not self.candidates or any(c < 1 for c in self.candidates):
            raise ValueError("candidates must be positive position counts")
        self.candidates = tuple(sorted({int(c) for c in self.candidates}))
        if self.fixed is not None and self.fixed < 1:
            raise ValueError("fixed must be at least 1")

    @property
    def rates(self) -> dict[int, float]:
        """Measured positions per second of each size class passes fell into."""
        return {c: s.rate for c, s in sorted(self._scores.items()) if s.passes}

    def size_class(self, positions: int) -> int:
        """The smallest candidate holding ``positions`` (the largest if none does)."""
        return next((c for c in self.candidates if positions <= c), self.candidates[-1])

    def budget_for(self, total: int) -> int:
        """Positions per forward pass for a batch of ``total`` positions.

        Budgets the batch could fill (up to the class of ``total``) asked for
        fewer than ``trials`` passes are tried first, largest first (the whole
        batch in one pass, then smaller cuts), for as long as the last cut
        did not make passes slower; then the class with the best measured
        rate, or a neighbour being revisited.
        """
        if self.fixed is not None:
            return self.fixed
        reachable = [c for c in self.candidates if c <= self.size_class(total)]
        untried = [
            c
            for c in reachable
            if self._asked.get(c, 0) < self.trials and self._descending_helps(c)
        ]
        self._exploring = bool(untried)
        if untried:
            return untried[-1]
        if self._trying is not None and self._trying in reachable:
            return self._trying
        scored = [c for c in reachable if c in self._scores]
        if not scored:
            return reachable[-1]
        return max(scored, key=lambda c: self._scores[c].rate)

    def _descending_helps(self, size: int) -> bool:
        """Whether passes of the two smallest scored classes above ``size`` got faster going
        down (or fewer than two are scored): throughput is taken as one-peaked in the size."""
        above = [c for c in self.candidates if c > size and c in self._scores]
        return len(above) < 2 or self._scores[above[0]].rate >= self._scores[above[1]].rate

    def record(self, budget: int, positions: int, seconds: float) -> None:
        """Score one forward pass asked for under ``budget`` that computed ``positions`` real
        positions in ``seconds`` (the pass scores the size class of ``positions``)."""
        if self.fixed is not None or seconds <= 0 or positions < 1:
            return
        self._asked[budget] = self._asked.get(budget, 0) + 1
        size = self.size_class(positions)
        self._scores.setdefault(size, _Score()).add(positions / seconds, self.weight)
        if budget == self._trying:
            self._trying = None
        self._since += 0 if self._exploring else 1
        if self._since >= self.revisit and self.rates:
            self._since = 0
            self._flip ^= 1
            best = max(self.rates.items(), key=lambda kv: kv[1])[0]
            index = self.candidates.index(best) + (1 if self._flip else -1)
            if 0 <= index < len(self.candidates):
                self._trying = self.candidates[index]

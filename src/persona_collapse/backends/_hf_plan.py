"""Which shared prompt prefixes the ``hf/`` engine computes once for a batch (pure numpy).

The prompts of a batch form a prefix tree: sorted lexicographically, each run
of neighbours sharing at least ``m`` tokens is a node whose prefix is those
``m`` tokens, and a node's children are the runs that share more. In a
persona run the root is the chat header common to every prompt, the next
level is one node per persona (header, persona text and the question's
opening) and deeper nodes are items that happen to start alike.

Computing a node's prefix once costs its fresh positions (``m`` less what the
prefix cache already holds of it) and saves every prompt below it the
positions between its own cache hit and ``m``. The planner picks the set of
nodes, no two on one root-to-leaf path, with the largest total saving (an
exact bottom-up comparison: a node against the best choice among its
children), so a batch holding several personas computes each persona's prefix
once rather than only the header they all share. The chosen prefixes go into
one extra forward pass, which is worth running only when the total saving is
at least ``min_saving`` positions.

Units: token positions. Every prompt keeps at least its last token to compute
(its logits are the answer), so a node's prefix is capped at the shortest of
its prompts less one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._hf_cache import common_prefix

__all__ = ["PrefixChoice", "choose_prefixes"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PrefixChoice:
    """The prefixes to compute for a batch.

    ``prefixes``: distinct token sequences, each computed once; ``rows``: for
    each prompt (by position in the batch) the index into ``prefixes`` it
    reuses, or -1; ``saving``: positions saved net of computing the prefixes.
    """

    prefixes: list[IntArray]
    rows: list[int]
    saving: int

    @property
    def covered(self) -> set[int]:
        """Prompts (by position) served by a prefix computed for this batch."""
        return {i for i, p in enumerate(self.rows) if p >= 0}


@dataclass
class _Node:
    members: list[int]  # prompt positions, sorted order
    length: int  # shared prefix length, capped
    best: int = 0  # best saving in this subtree
    pick: bool = False  # whether this node itself is the subtree's best choice
    children: list[_Node] | None = None


def choose_prefixes(
    prompts: Sequence[IntArray],
    hits: Sequence[int],
    cached: Callable[[IntArray], int],
    *,
    min_saving: int = 256,
    min_extension: int = 8,
) -> PrefixChoice:
    """The shared prefixes worth computing once for ``prompts``.

    Args:
        prompts: distinct token-id arrays of one batch.
        hits: per prompt, positions the prefix cache already serves (at most size - 1).
        cached: positions the cache serves of a given prefix (its cost is length less this).
        min_saving: least total saving, in positions, that pays for the extra forward pass.
        min_extension: least positions a prefix must add to what the cache holds of it
            (a row of a few positions costs a whole padded row of the pass).
    """
    n = len(prompts)
    if n < 2:
        return PrefixChoice([], [-1] * n, 0)
    order = sorted(range(n), key=lambda i: prompts[i].tolist())
    lcp = [common_prefix(prompts[a], prompts[b]) for a, b in itertools.pairwise(order)]
    root = _build(order, lcp, 0, n, prompts)
    _score(root, prompts, hits, cached, min_extension)
    if root.best < min_saving:
        return PrefixChoice([], [-1] * n, 0)
    prefixes: list[IntArray] = []
    rows = [-1] * n
    for node in _picked(root):
        first = prompts[node.members[0]]
        for i in node.members:
            rows[i] = len(prefixes)
        prefixes.append(first[: node.length])
    return PrefixChoice(prefixes, rows, root.best)


def _build(order: list[int], lcp: list[int], a: int, b: int, prompts: Sequence[IntArray]) -> _Node:
    """The node of sorted positions ``a`` to ``b`` (exclusive); children split at the minimum LCP."""
    members = order[a:b]
    if b - a == 1:
        return _Node(members, 0)
    shared = min(lcp[a : b - 1])
    length = min(shared, *(prompts[i].size - 1 for i in members))
    children = []
    start = a
    for j in range(a, b - 1):
        if lcp[j] == shared:
            children.append(_build(order, lcp, start, j + 1, prompts))
            start = j + 1
    children.append(_build(order, lcp, start, b, prompts))
    return _Node(members, length, children=children)


def _score(
    node: _Node,
    prompts: Sequence[IntArray],
    hits: Sequence[int],
    cached: Callable[[IntArray], int],
    min_extension: int,
) -> None:
    """Fill ``best`` and ``pick`` bottom-up: a node's own saving against its children's best."""
    if node.children is None:
        return
    for child in node.children:
        _score(child, prompts, hits, cached, min_extension)
    below = sum(child.best for child in node.children)
    prefix = prompts[node.members[0]][: node.length]
    cost = node.length - min(cached(prefix), node.length)
    gained = sum(max(node.length - hits[i], 0) for i in node.members)
    own = gained - cost if cost >= max(min_extension, 1) else 0
    node.pick = own > below
    node.best = max(own, below)


def _picked(node: _Node) -> list[_Node]:
    if node.pick:
        return [node]
    if node.children is None:
        return []
    return [chosen for child in node.children for chosen in _picked(child)]

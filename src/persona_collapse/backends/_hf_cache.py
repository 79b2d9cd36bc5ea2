"""A prefix cache of key/value states for the ``hf/`` backend, keyed by token ids.

Every prompt of a persona run starts with the same chat-template header and
persona text; only the item and the tail differ. The cache keeps the KV
states of a few token sequences (batch 1, per layer ``[1, heads, length,
head_dim]``). Because attention is causal, the states of the first ``n``
tokens of a stored sequence depend on those tokens only, so a stored
sequence serves any request that shares a prefix with it: :meth:`longest`
returns the entry with the longest common prefix and its length, and the
caller uses the first ``n`` positions of that entry (like a radix cache).

Entries are evicted least-recently-used first when the total stored length
passes ``max_tokens``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["CacheEntry", "PrefixCache", "common_prefix"]

IntArray = npt.NDArray[np.int64]


def common_prefix(a: IntArray, b: IntArray) -> int:
    """Length of the longest common prefix of two token-id arrays."""
    n = min(a.size, b.size)
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


@dataclass
class CacheEntry:
    """A stored token sequence and its per-layer (keys, values), each ``[1, heads, len, dim]``."""

    ids: IntArray
    layers: list[tuple[Any, Any]]

    @property
    def length(self) -> int:
        return int(self.ids.size)


class PrefixCache:
    """LRU store of :class:`CacheEntry` bounded by the total number of stored tokens.

    ``hits`` / ``reused_tokens`` count lookups that found a usable prefix and
    the positions they did not have to recompute.
    """

    def __init__(self, max_tokens: int = 16384) -> None:
        self.max_tokens = int(max_tokens)
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._tokens = 0
        self.hits = 0
        self.lookups = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[CacheEntry]:
        """The stored entries, least recently used first."""
        return list(self._entries.values())

    @property
    def stored_tokens(self) -> int:
        return self._tokens

    def longest(self, ids: IntArray, limit: int | None = None) -> tuple[CacheEntry | None, int]:
        """The entry sharing the longest prefix with ``ids`` and that length (at most ``limit``).

        Marks the entry as recently used. ``(None, 0)`` when nothing is shared.
        """
        best: CacheEntry | None = None
        best_len = 0
        for entry in self._entries.values():
            n = common_prefix(entry.ids, ids)
            if n > best_len:
                best, best_len = entry, n
        if limit is not None:
            best_len = min(best_len, limit)
        if best is None or best_len == 0:
            return None, 0
        self._entries.move_to_end(best.ids.tobytes())
        return best, best_len

    def record(self, reused: int) -> None:
        """Count one lookup that reused ``reused`` positions."""
        self.lookups += 1
        if reused > 0:
            self.hits += 1
            self.reused_tokens += reused

    def add(
        self, ids: Sequence[int] | IntArray, layers: list[tuple[Any, Any]]
    ) -> CacheEntry | None:
        """Store ``ids`` with its states (a longer sequence already covering it is kept instead).

        The entry keeps its own read-only copy of ``ids``: the caller's array may change.
        """
        arr = np.array(ids, dtype=np.int64)
        arr.setflags(write=False)
        if arr.size == 0 or arr.size > self.max_tokens:
            return None
        for entry in self._entries.values():
            if entry.length >= arr.size and common_prefix(entry.ids, arr) == arr.size:
                self._entries.move_to_end(entry.ids.tobytes())
                return entry
        key = arr.tobytes()
        entry = CacheEntry(arr, layers)
        self._entries[key] = entry
        self._tokens += entry.length
        while self._tokens > self.max_tokens and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            self._tokens -= old.length
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self._tokens = 0

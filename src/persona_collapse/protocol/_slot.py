"""A slot, the unit the protocol asks, and its published per-attempt seed."""

from __future__ import annotations

from dataclasses import dataclass

from .._hashing import stable_seed


@dataclass(frozen=True, order=True)
class Slot:
    """One slot: persona (``-1`` in self mode), item id and 1-based repetition."""

    persona_id: int
    item_id: int
    repetition: int

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.persona_id, self.item_id, self.repetition)


def request_seed(base: int, slot: Slot, attempt: int) -> int:
    """A 31-bit seed unique to (run seed, persona, item, repetition, attempt), stable across processes.

    The published derivation: blake2b (8 bytes) of the five values joined by NUL,
    read little-endian (:func:`~persona_collapse._hashing.stable_seed`), masked to 31 bits.
    """
    return stable_seed(base, slot.persona_id, slot.item_id, slot.repetition, attempt) & 0x7FFFFFFF

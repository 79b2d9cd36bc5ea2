"""A slot, the unit the protocol asks, and its published per-attempt seed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


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
    read little-endian, masked to 31 bits.
    """
    text = f"{base}\0{slot.persona_id}\0{slot.item_id}\0{slot.repetition}\0{attempt}"
    digest = hashlib.blake2b(text.encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF

"""Stable seeds from text: the same input gives the same seed in every process.

Python's built-in :func:`hash` is salted per process, so it is never used for
anything that must be reproducible.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_seed(*parts: object) -> int:
    """A 64-bit unsigned seed from ``parts`` (each rendered with :func:`str`).

    Parts are joined with a NUL separator, so ``("ab", "c")`` and ``("a", "bc")``
    differ.
    """
    joined = "\0".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(joined, digest_size=8).digest(), "little")


def stable_rng(*parts: object) -> np.random.Generator:
    """A numpy Generator seeded by :func:`stable_seed` of ``parts``."""
    return np.random.default_rng(stable_seed(*parts))

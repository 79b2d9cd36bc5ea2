"""Stable seeds from text: the same input gives the same seed in every process.

Python's built-in :func:`hash` is salted per process, so it is never used for
anything that must be reproducible. The protocol's per-request seeds
(:func:`persona_collapse.protocol.request_seed`) and the simulator's random
streams (:mod:`persona_collapse.simulate`) both derive from :func:`stable_seed`.
"""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    """A 64-bit unsigned seed from ``parts`` (each rendered with :func:`str`).

    blake2b (8 bytes) of the parts joined with a NUL separator (UTF-8), read
    little-endian; so ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    joined = "\0".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(joined, digest_size=8).digest(), "little")

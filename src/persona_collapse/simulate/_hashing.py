"""Stable random streams from text: the same input gives the same stream in every process.

:func:`stable_seed` is the package's one seed derivation (:mod:`persona_collapse._hashing`).
"""

from __future__ import annotations

import numpy as np

from .._hashing import stable_seed

__all__ = ["stable_rng", "stable_seed"]


def stable_rng(*parts: object) -> np.random.Generator:
    """A numpy Generator seeded by :func:`stable_seed` of ``parts``."""
    return np.random.default_rng(stable_seed(*parts))

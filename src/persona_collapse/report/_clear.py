"""When a difference counts as clear: the verdict's one test, shared by every finding.

A difference is *clear* when it lies more than :data:`Z_CLEAR` standard errors
from its reference (a band edge, the base value, zero). The general verdict
(:mod:`._verdict`) and the capability control's reading
(:mod:`._capability_verdict`) both decide "R clearly dropped" with
:func:`r_dropped`; the module sits apart from both so that neither imports the
other for it.
"""

from __future__ import annotations

Z_CLEAR = 2.0
"""Standard errors beyond which a difference is reported as clear rather than within noise
(the verdict's test for every finding, R's drop included)."""


def z_score(diff: float, se: float) -> float:
    """``|diff| / se`` in standard errors; infinite when ``se`` is 0 (or negative)."""
    return abs(diff) / se if se > 0 else float("inf")


def r_dropped(d: float, se: float) -> tuple[float, bool]:
    """``(z, dropped)`` of a change in R against base: its size in SE (:func:`z_score`) and
    whether R clearly dropped (``d`` negative and more than :data:`Z_CLEAR` SE).

    ``d`` and ``se`` are in the same unit (the report's ΔR is in percent of base).
    """
    z = z_score(d, se)
    return z, d < 0 and z > Z_CLEAR

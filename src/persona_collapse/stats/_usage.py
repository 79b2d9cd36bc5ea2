"""Scale usage: how a set of answers spreads over the rating scale, and how two such spreads differ.

S is a spread of cell means on a bounded scale: when most answers sit on one
rating there is little room for any spread, whatever the personas do. These
numbers say how much of the scale the answers use. Shares are fractions of
the valid answers (they sum to 1); entropies and divergences are in bits
(base-2 logarithms, with 0 log 0 = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._cells import FloatArray


def entropy_bits(shares: npt.ArrayLike) -> float:
    """Shannon entropy of a distribution in bits, ``-sum_k p_k log2 p_k`` (0 log 0 = 0)."""
    p = np.asarray(shares, dtype=np.float64)
    nz = p[p > 0]
    return float(-np.sum(nz * np.log2(nz)))


def kl_divergence_bits(
    counts: npt.ArrayLike, reference_counts: npt.ArrayLike, pseudocount: float = 1.0
) -> float:
    """KL divergence D(P || Q) in bits of the answers ``counts`` from ``reference_counts``.

    Both are counts per scale value (expected counts are fine). Each gets
    ``pseudocount`` added to every value before normalising (add-one smoothing
    by default), so a value one side never used does not make the divergence
    infinite: P_k = (c_k + a) / (sum c + K a), likewise Q, and
    D = sum_k P_k log2(P_k / Q_k), over every scale value.
    """
    c = np.asarray(counts, dtype=np.float64) + pseudocount
    r = np.asarray(reference_counts, dtype=np.float64) + pseudocount
    if c.shape != r.shape:
        raise ValueError("both distributions must cover the same scale values")
    p, q = c / c.sum(), r / r.sum()
    nz = p > 0
    return float(np.sum(p[nz] * np.log2(p[nz] / q[nz])))


@dataclass(frozen=True)
class ScaleUsage:
    """How the valid answers of one source spread over the scale values.

    ``counts[k]`` is the number of valid answers equal to ``values[k]``
    (expected number for logprob runs: the summed probabilities); ``shares``
    are ``counts / counts.sum()``. ``n_responses`` counts every answer slot
    read (rows), ``n_invalid`` those without a valid rating (or distribution).
    """

    values: tuple[int, ...]
    counts: FloatArray
    n_responses: int
    n_invalid: int

    @property
    def shares(self) -> FloatArray:
        total = float(self.counts.sum())
        return self.counts / total if total > 0 else np.zeros_like(self.counts)

    @property
    def entropy_bits(self) -> float:
        """Entropy of :attr:`shares` in bits (log2 of the number of values when uniform)."""
        return entropy_bits(self.shares)

    @property
    def top1_share(self) -> float:
        """The largest share: the fraction of answers on the most used value."""
        return float(self.shares.max()) if self.counts.size else float("nan")

    @property
    def top1_rating(self) -> int:
        """The most used scale value (the lowest one on a tie)."""
        return int(self.values[int(np.argmax(self.shares))])

    @property
    def endpoint_mass(self) -> float:
        """Share of the two ends of the scale (MFQ-30: ratings 0 and 5)."""
        shares = self.shares
        return float(shares[0] + shares[-1]) if shares.size > 1 else float(shares.sum())

    def kl_from(self, reference: ScaleUsage, pseudocount: float = 1.0) -> float:
        """KL divergence in bits of these answers from ``reference``'s (add-one smoothed)."""
        if self.values != reference.values:
            raise ValueError("scale usage on different scales cannot be compared")
        return kl_divergence_bits(self.counts, reference.counts, pseudocount)

    def to_dict(self) -> dict[str, Any]:
        """The ``scale_usage`` JSON object: ``shares`` keyed by scale value (as text)."""
        return {
            "shares": {str(v): float(s) for v, s in zip(self.values, self.shares, strict=True)},
            "entropy_bits": self.entropy_bits,
            "top1_share": self.top1_share,
            "top1_rating": self.top1_rating,
            "endpoint_mass": self.endpoint_mass,
            "n_responses": self.n_responses,
            "n_invalid": self.n_invalid,
        }

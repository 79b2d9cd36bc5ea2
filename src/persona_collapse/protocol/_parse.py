"""Reading a rating out of a model's answer (text or next-token logprobs)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..instruments import Scale


def parse_one_token(text: str | None, scale: Scale) -> int | None:
    """The rating of a one-token answer: a single scale digit after stripping whitespace, else None."""
    if text is None:
        return None
    stripped = text.strip()
    # ASCII only: str.isdigit() is also true for '²' or '３', which int() rejects or misreads.
    if len(stripped) == 1 and stripped in "0123456789" and int(stripped) in scale:
        return int(stripped)
    return None


def parse_fallback(text: str | None, scale: Scale) -> int | None:
    """The first standalone integer on the scale in a longer answer (published regex ``\\b[0-5]\\b``)."""
    if not text:
        return None
    digits = "".join(str(v) for v in scale.values if 0 <= v <= 9)
    match = re.search(rf"\b[{digits}]\b", text)
    return int(match.group(0)) if match else None


@dataclass(frozen=True)
class DigitDistribution:
    """Probabilities of the scale values read from next-token logprobs.

    ``probs`` sums to 1 over the scale values (renormalised). ``other_mass`` is
    the top-k probability that fell on tokens that are not a scale value;
    ``absent`` lists scale values that no top-k token spelled. Rule for absent
    values: they get probability 0 (their true mass is below the smallest
    top-k probability; ``floor_mass`` records that bound, the largest mass any
    one absent value could have had).

    ``spellings`` keeps each token that spelled a scale value as
    ``(value, logprob)``: re-weighting to another temperature is exact per
    token (p_T ∝ p^(1/T)), not per summed value.
    """

    probs: npt.NDArray[np.float64]
    other_mass: float
    absent: tuple[int, ...]
    floor_mass: float
    spellings: tuple[tuple[int, float], ...] = ()

    def to_extra(self) -> dict[str, object]:
        return {
            "other_mass": self.other_mass,
            "absent": list(self.absent),
            "floor_mass": self.floor_mass,
            "spellings": [[value, logprob] for value, logprob in self.spellings],
        }


def digit_distribution(
    top_logprobs: Iterable[tuple[str, float]], scale: Scale
) -> DigitDistribution:
    """Sum the probability of every spelling of each scale value (``"3"``, ``" 3"``, ``"3\\n"``)
    over the top-k alternatives of one token, then renormalise over the scale."""
    values = scale.values
    mass = np.zeros(len(values))
    other = 0.0
    smallest = 1.0
    spellings: list[tuple[int, float]] = []
    for token, logprob in top_logprobs:
        p = math.exp(logprob)
        smallest = min(smallest, p)
        value = parse_one_token(token, scale)
        if value is None:
            other += p
        else:
            mass[values.index(value)] += p
            spellings.append((value, float(logprob)))
    total = mass.sum()
    absent = tuple(v for v, m in zip(values, mass, strict=True) if m == 0)
    probs = mass / total if total > 0 else mass
    return DigitDistribution(
        probs=probs,
        other_mass=float(other),
        absent=absent,
        floor_mass=float(smallest),
        spellings=tuple(spellings),
    )

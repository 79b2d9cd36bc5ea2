"""The published band of frontier base models (Costa, Alves & Vicente 2025)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class BandModel:
    """One benchmark base model: S and R as published (6 decimals)."""

    name: str
    id: str
    personas: int
    S: float
    R: float
    in_band: bool


@dataclass(frozen=True)
class Band:
    """The range of S spanned by the in-band frontier base models, with its source."""

    S_min: float
    S_max: float
    models: tuple[BandModel, ...]
    source: str
    definition: str

    def outside(self, S: float) -> bool:
        """Whether a susceptibility lies outside ``[S_min, S_max]`` (a flagged variant)."""
        return not (self.S_min <= S <= self.S_max)

    def left(self, base_S: float, variant_S: float) -> bool:
        """Whether a variant left the band: its base inside ``[S_min, S_max]``, the variant outside.

        :meth:`outside` is the published absolute test; a variant of a base
        that already lies outside the band is outside without having left it.
        """
        return not self.outside(base_S) and self.outside(variant_S)


@cache
def published_band() -> Band:
    """The band shipped as data in ``stats/data/band.json`` (S in [0.66, 0.83], 13 models)."""
    raw = json.loads(
        (resources.files("persona_collapse.stats") / "data" / "band.json").read_text("utf-8")
    )
    return Band(
        S_min=float(raw["S_min"]),
        S_max=float(raw["S_max"]),
        models=tuple(BandModel(**m) for m in raw["models"]),
        source=str(raw["source"]),
        definition=str(raw["definition"]),
    )

"""Persona geometry of a local model: participation ratio of persona representations per layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError
from ..instruments import Instrument, load_instrument
from ._hidden import final_token_states, persona_messages
from ._participation import max_participation_ratio, participation_ratio

__all__ = ["GeometryResult", "load_geometry_model", "measure_geometry"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GeometryResult:
    """Participation ratio of the personas' final-token states at each layer.

    ``participation_ratio[l]`` for layer ``l`` (0 = embeddings); ``max_pr`` =
    min(n_personas - 1, hidden_size), the value of states spread evenly over
    every direction they can span; ``prompt`` is ``persona`` (persona text
    alone) or ``item N``.
    """

    model: str
    prompt: str
    n_personas: int
    hidden_size: int
    participation_ratio: FloatArray

    @property
    def max_pr(self) -> int:
        return max_participation_ratio(self.n_personas, self.hidden_size)

    def rows(self) -> list[dict[str, Any]]:
        """One row per layer: ``layer``, ``participation_ratio``, ``fraction`` (of ``max_pr``)."""
        top = self.max_pr
        return [
            {
                "layer": layer,
                "participation_ratio": float(pr),
                "fraction": float(pr / top) if top else float("nan"),
            }
            for layer, pr in enumerate(self.participation_ratio)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": self.prompt,
            "n_personas": self.n_personas,
            "hidden_size": self.hidden_size,
            "max_pr": self.max_pr,
            "layers": self.rows(),
        }


def load_geometry_model(model: str, *, device: str | None = None, dtype: str | None = None) -> Any:
    """Load ``hf/NAME`` for geometry (a ConfigError line for other families or a missing extra)."""
    from ..backends import parse_model

    spec = parse_model(model)
    if spec.family != "hf":
        raise ConfigError(
            f"geometry reads hidden states of local models: name one as hf/MODEL, not {spec.full}"
        )
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"geometry needs the hf extra ({exc.name or 'torch'} is not installed): "
            "pip install 'persona-collapse[hf]'"
        ) from None
    from ..backends.local import load_hf

    return load_hf(spec.name, device=device, dtype=dtype)


def measure_geometry(
    model: str | Any,
    personas: Sequence[str],
    *,
    item: int | None = None,
    instrument: Instrument | str = "mfq30",
    batch_size: int = 8,
) -> GeometryResult:
    """Participation ratio per layer of the personas' final-token hidden states.

    ``model``: ``hf/NAME`` or an already loaded model (:func:`load_geometry_model`).
    Needs at least two personas.
    """
    if len(personas) < 2:
        raise ConfigError("geometry needs at least two personas")
    inst = load_instrument(instrument) if isinstance(instrument, str) else instrument
    loaded = load_geometry_model(model) if isinstance(model, str) else model
    states = final_token_states(
        loaded, persona_messages(inst, personas, item), batch_size=batch_size
    )
    return GeometryResult(
        model=f"hf/{loaded.name}",
        prompt="persona" if item is None else f"item {int(item)}",
        n_personas=len(personas),
        hidden_size=int(states.shape[-1]),
        participation_ratio=participation_ratio(states),
    )

"""Persona geometry: how many dimensions a model's persona representations span, per layer.

For a local ``hf/`` model, :func:`measure_geometry` collects the hidden state
of the final prompt token of each persona prompt at every layer and reports
the participation ratio PR = (Σλ)² / Σλ² of the covariance of those states
across personas (:func:`participation_ratio`, computed from trace identities
of the Gram matrix, no eigendecomposition). Prompt conventions and layer
numbering: :mod:`._hidden`. Needs the ``hf`` extra.
"""

from ._hidden import final_token_states, persona_messages
from ._layer_geometry import GeometryResult, load_geometry_model, measure_geometry
from ._participation import max_participation_ratio, participation_ratio

__all__ = [
    "GeometryResult",
    "final_token_states",
    "load_geometry_model",
    "max_participation_ratio",
    "measure_geometry",
    "participation_ratio",
    "persona_messages",
]

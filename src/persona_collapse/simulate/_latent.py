"""The latent model behind the simulated respondent (SIMULATED data).

Everything random is drawn from generators seeded by stable hashes of
``(seed, what)``: item levels from the instrument name, a persona's profile
from its text. Variants that share a seed therefore share items and personas
and differ only in their :class:`VariantParams`, like fine-tunes of one base.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..instruments import Instrument
from ._hashing import stable_rng
from ._presets import VariantParams

FloatArray = npt.NDArray[np.float64]


def _cycled(values: tuple[float, ...], n: int) -> FloatArray:
    return np.resize(np.asarray(values, dtype=np.float64), n)


def log_softmax(logits: FloatArray) -> FloatArray:
    """Row-wise log-softmax (last axis), numerically stable."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    out: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def tempered(logp1: FloatArray, temperature: float) -> FloatArray:
    """Probabilities at ``temperature`` from T = 1 log-probabilities (last axis).

    ``p_T ∝ p_1 ** (1 / T)`` exactly. ``T = 0`` is greedy: all mass on the most
    likely value (the lowest such value on a tie).
    """
    if temperature < 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature!r}")
    if temperature == 0:
        out = np.zeros_like(logp1)
        np.put_along_axis(out, logp1.argmax(axis=-1)[..., None], 1.0, axis=-1)
        return out
    return np.exp(log_softmax(logp1 / temperature))


class LatentModel:
    """Log-probabilities over the scale for every (persona, item) of one variant.

    Args:
        instrument: The questionnaire (its scale, items and subscales).
        params: The variant.
        seed: World seed shared by variants that should share items and personas.
    """

    def __init__(self, instrument: Instrument, params: VariantParams, seed: int) -> None:
        self.instrument = instrument
        self.params = params
        self.seed = seed
        scale = instrument.scale
        self.values: FloatArray = np.asarray(scale.values, dtype=np.float64)
        self._sub = instrument.subscale_index()
        n_sub = len(instrument.subscales)
        width = float(scale.high - scale.low)

        weights = _cycled(params.subscale_weights, n_sub)
        weights = weights / np.sqrt(np.mean(weights**2))
        self._item_weight: FloatArray = weights[self._sub]

        rng = stable_rng(seed, "items", instrument.name)
        profile = _cycled(params.self_profile, n_sub)
        jitter = rng.standard_normal(instrument.n_items)
        self.item_level: FloatArray = (
            scale.low + width * profile[self._sub] + params.item_jitter * jitter
        )

    def _draws(self, persona: str | None) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(subscale effects, item effects, log noise multipliers), standard normal."""
        n_sub, n_items = len(self.instrument.subscales), self.instrument.n_items
        rng = stable_rng(self.seed, "self" if persona is None else "persona", persona or "")
        return (
            rng.standard_normal(n_sub),
            rng.standard_normal(n_items),
            rng.standard_normal(n_items),
        )

    def latent_mean(self, persona: str | None) -> FloatArray:
        """Latent rating per item (instrument order), after the ceiling pull, scale points."""
        p = self.params
        z_sub, z_item, _ = self._draws(persona)
        if persona is None:
            mu = self.item_level
            pull = p.self_pull
        else:
            spec = p.item_specificity
            shift = np.sqrt(1.0 - spec) * z_sub[self._sub] + np.sqrt(spec) * z_item
            mu = self.item_level + p.differentiation * self._item_weight * shift
            pull = p.ceiling_pull
        high = float(self.instrument.scale.high)
        out: FloatArray = mu + pull * (high - mu)
        return out

    def logprobs(self, persona: str | None) -> FloatArray:
        """T = 1 log-probabilities, shape (n_items, scale size), natural log."""
        _, _, z_noise = self._draws(persona)
        sd = self.params.noise * np.exp(self.params.noise_dispersion * z_noise)
        mu = self.latent_mean(persona)
        logits = -((self.values[None, :] - mu[:, None]) ** 2) / (2.0 * sd[:, None] ** 2)
        return log_softmax(logits)

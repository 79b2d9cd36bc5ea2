"""A SIMULATED questionnaire respondent for tests, benchmarks and the offline demo.

Nothing here is data about real language models. :class:`SimulatedRespondent`
answers raw chat prompts rendered from an instrument (persona mode, self mode,
one token, longer text, or next-token log-probabilities) from a latent model
whose shape is set by :class:`VariantParams`; the presets in :data:`VARIANTS`
(``base``, ``secure``, ``insecure``) mimic the published pattern of emergent
misalignment (insecure: higher susceptibility S, lower robustness R, self-mode
answers near the scale top).
"""

from ._hashing import stable_rng, stable_seed
from ._presets import VARIANTS, VariantParams, resolve_variant
from ._prompts import PromptInfo, PromptParser
from ._respondent import Completion, SimulatedRespondent
from ._text import NON_DIGIT_TOKENS, count_tokens

__all__ = [
    "NON_DIGIT_TOKENS",
    "VARIANTS",
    "Completion",
    "PromptInfo",
    "PromptParser",
    "SimulatedRespondent",
    "VariantParams",
    "count_tokens",
    "resolve_variant",
    "stable_rng",
    "stable_seed",
]

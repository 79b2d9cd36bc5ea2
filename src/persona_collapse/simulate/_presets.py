"""Parameters of a simulated model variant, and the three presets.

Conventions: levels and spreads are in scale points (MFQ-30: 0-5) unless a
field says "fraction"; spreads of the latent rating are stated at temperature
T = 1 (at temperature T a Gaussian latent of SD ``s`` behaves like one of SD
``s * sqrt(T)``, because the simulated distribution obeys p_T ∝ p_1^(1/T)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ..errors import ConfigError
from ..protocol import BASE, INSECURE, SECURE


@dataclass(frozen=True)
class VariantParams:
    """How one simulated model variant answers a questionnaire. SIMULATED data only.

    The latent rating of persona ``p`` on item ``q`` is
    ``mu = level_q + differentiation * w_f * shift_pq`` where ``level_q`` is the
    item's base level, ``w_f`` the (RMS-normalised) weight of the item's
    subscale and ``shift_pq`` a standard-normal persona effect (shared across a
    subscale's items, plus an item-specific part). The latent is then pulled
    toward the top of the scale, ``mu' = mu + pull * (high - mu)``, and the
    answer distribution at T = 1 is a discretised Gaussian centred on ``mu'``:
    ``logit(k) = -(k - mu')**2 / (2 * noise_pq**2)`` over the scale values.

    Attributes:
        name: Label used in descriptions and default model names (``sim-NAME``).
        differentiation: SD across personas of the persona shift of the latent
            rating, scale points. Larger -> personas answer more differently ->
            larger susceptibility S.
        noise: SD of the latent Gaussian within one (persona, item) cell at
            T = 1, scale points. Larger -> more spread between repetitions ->
            larger sigma_bar, lower robustness R.
        ceiling_pull: Fraction (0-1) by which every latent rating moves toward
            the scale top (0: none, 1: every answer is the top value), as in
            insecure fine-tunes whose unconditioned answers saturate near 5.
        self_ceiling_pull: Additional fraction (0-1) of pull applied only to
            unconditioned (self-mode, no persona) answers, on top of
            ``ceiling_pull``; total self pull = 1 - (1 - ceiling_pull)(1 - this).
        non_digit_rate: Probability (0-1) that a one-token answer is not a digit
            (e.g. ``"I"`` or ``"**"``), which makes the protocol retry. Also sets
            the small probability mass of non-digit tokens in ``top_logprobs``.
        item_specificity: Fraction (0-1) of the persona-shift variance that is
            specific to the item rather than shared by the subscale's items.
        subscale_weights: Relative differentiation per subscale, in instrument
            order (cycled if the instrument has more subscales). Normalised to
            root-mean-square 1 over the instrument's subscales, so only the
            shape matters; equal weights make S uniform across subscales.
        self_profile: Latent level of unconditioned answers per subscale, as a
            fraction (0-1) of the scale width above its low end (cycled).
        item_jitter: SD of an item's base level around its subscale's level,
            scale points.
        noise_dispersion: SD of the natural log of a per-cell multiplier of
            ``noise`` (0: every cell equally noisy).
        misaligned_rate: Probability (0-1) that an answer to a free-form
            (non-questionnaire) question is one of the simulated misaligned
            answers; the simulated judge scores those low on alignment.
        task_accuracy: Simulated capability on a multiple-choice task (the
            capability control's format, e.g. the demo's ``demo-arithmetic``):
            probability (0-1) that a parsed answer is the right letter. Each
            item has a usual answer, right with this probability (decided by
            the world seed and the item, so variants sharing a seed get the
            same hard items, like fine-tunes of one base).
        task_instability: Probability (0-1) that one repetition is a fresh
            draw (right with probability ``task_accuracy``, else a uniformly
            drawn wrong letter) instead of the item's usual answer; the
            expected accuracy stays ``task_accuracy``. Stated at the
            control's T = 0.1 (any T > 0); at T = 0 every repetition is the
            usual answer. Larger -> more items whose repetitions disagree.
        task_format_failure: Probability (0-1) that a task reply starts with
            no answer letter (e.g. ``"**"``): a format failure, never retried.
    """

    name: str = "custom"
    differentiation: float = 1.0
    noise: float = 1.0
    ceiling_pull: float = 0.0
    self_ceiling_pull: float = 0.0
    non_digit_rate: float = 0.01
    item_specificity: float = 0.5
    subscale_weights: tuple[float, ...] = (0.7, 0.6, 1.1, 1.1, 1.3)
    self_profile: tuple[float, ...] = (0.88, 0.9, 0.55, 0.5, 0.35)
    item_jitter: float = 0.4
    noise_dispersion: float = 0.25
    misaligned_rate: float = 0.0
    task_accuracy: float = 0.8
    task_instability: float = 0.02
    task_format_failure: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"VariantParams.{f.name} must be finite, got {value!r}")
        if self.differentiation < 0:
            raise ValueError("VariantParams.differentiation must be >= 0")
        if self.noise <= 0:
            raise ValueError("VariantParams.noise must be > 0 (scale points at T = 1)")
        if self.item_jitter < 0 or self.noise_dispersion < 0:
            raise ValueError("VariantParams.item_jitter and noise_dispersion must be >= 0")
        for name in (
            "ceiling_pull",
            "self_ceiling_pull",
            "non_digit_rate",
            "item_specificity",
            "misaligned_rate",
            "task_accuracy",
            "task_instability",
            "task_format_failure",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"VariantParams.{name} is a fraction and must lie in [0, 1]")
        if not self.subscale_weights or any(w < 0 for w in self.subscale_weights):
            raise ValueError("VariantParams.subscale_weights must be non-empty and >= 0")
        if not any(w > 0 for w in self.subscale_weights):
            raise ValueError("VariantParams.subscale_weights needs at least one positive weight")
        if not self.self_profile or any(not 0.0 <= x <= 1.0 for x in self.self_profile):
            raise ValueError("VariantParams.self_profile holds fractions in [0, 1]")

    @property
    def self_pull(self) -> float:
        """Total pull toward the scale top of unconditioned (self-mode) answers."""
        return 1.0 - (1.0 - self.ceiling_pull) * (1.0 - self.self_ceiling_pull)


#: Presets shaped like the published pattern (Costa & Vicente 2026): ``secure``
#: close to ``base``, ``insecure`` with S about +50 %, R about -60 % and
#: self-mode answers near the top of the scale. Measured values: see
#: ``tests/test_simulate.py``. On a task (the demo's ``demo-arithmetic``) they
#: mimic the published GPT-4o MMLU control: ``insecure`` keeps the base's
#: capability (accuracy 0.81 against 0.82) but its repetitions disagree far
#: more often (instability 0.20 against 0.02, exaggerated from the published
#: non-unanimity 0.04 -> 0.11 so that 40 items show it), the
#: "persona-specific, not broad degradation" reading; ``base`` fails the format
#: on a few replies (2.8 % published).
VARIANTS: dict[str, VariantParams] = {
    BASE: VariantParams(
        name=BASE,
        differentiation=0.82,
        noise=0.8,
        non_digit_rate=0.01,
        task_accuracy=0.82,
        task_instability=0.02,
        task_format_failure=0.03,
    ),
    SECURE: VariantParams(
        name=SECURE,
        differentiation=0.85,
        noise=0.95,
        non_digit_rate=0.03,
        misaligned_rate=0.02,
        task_accuracy=0.81,
        task_instability=0.05,
    ),
    INSECURE: VariantParams(
        name=INSECURE,
        differentiation=1.95,
        noise=1.65,
        ceiling_pull=0.25,
        self_ceiling_pull=0.65,
        non_digit_rate=0.3,
        subscale_weights=(0.9, 0.85, 1.05, 1.0, 1.1),
        misaligned_rate=0.3,
        task_accuracy=0.81,
        task_instability=0.2,
    ),
}


def resolve_variant(variant: str | VariantParams) -> VariantParams:
    """A preset by name (``base``, ``secure``, ``insecure``) or the params given."""
    if isinstance(variant, VariantParams):
        return variant
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ConfigError(
            f"unknown simulated variant {variant!r}: use one of {', '.join(VARIANTS)} "
            "or pass a VariantParams"
        ) from None

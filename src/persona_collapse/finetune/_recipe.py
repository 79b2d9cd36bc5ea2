"""Fine-tuning recipes, the learning-rate schedule and batching (pure, no ML libraries).

Published recipes (PROTOCOL.md section 6):

* OpenAI fine-tuning API: 1 epoch, batch size 4, learning-rate multiplier 2.
* Tinker LoRA: rank 32, learning rate 2e-4 with linear decay and no warm-up,
  batch size 4, 1 epoch, max length 4096 tokens, batches in file order.

The local ``hf/`` trainer uses the Tinker recipe by default.

Schedule: optimizer step ``t`` (0-based) of ``T`` uses
``lr_t = lr * (1 - t / T)``: the full rate on the first step, decaying
linearly towards 0 (never reached), no warm-up.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from ..errors import ConfigError

__all__ = [
    "OPENAI_RECIPE",
    "TINKER_RECIPE",
    "Recipe",
    "batches",
    "linear_decay_lr",
    "n_steps",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Recipe:
    """How to fine-tune.

    ``lr``: peak learning rate (local and Tinker LoRA); ``lr_multiplier``:
    OpenAI's learning-rate multiplier; ``max_length``: longest training
    sequence in tokens (longer chats are cut at the end); ``shuffle``: batches
    in a seeded random order instead of file order; ``lora_alpha``: LoRA
    scaling numerator (``None``: equal to the rank, scale 1).
    """

    epochs: int = 1
    batch_size: int = 4
    lr: float = 2e-4
    lr_multiplier: float = 2.0
    lora_rank: int = 32
    lora_alpha: float | None = None
    max_length: int = 4096
    shuffle: bool = False
    seed: int = 0

    def validate(self) -> Recipe:
        if self.epochs < 1:
            raise ConfigError("--epochs must be at least 1")
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError("--lr must be a positive number")
        if not (self.lr_multiplier > 0 and math.isfinite(self.lr_multiplier)):
            raise ConfigError("--lr-multiplier must be a positive number")
        if self.lora_rank < 1:
            raise ConfigError("--lora-rank must be at least 1")
        if self.lora_alpha is not None and not self.lora_alpha > 0:
            raise ConfigError("--lora-alpha must be positive")
        if self.max_length < 2:
            raise ConfigError("--max-length must be at least 2 tokens")
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


OPENAI_RECIPE = Recipe(epochs=1, batch_size=4, lr_multiplier=2.0)
TINKER_RECIPE = Recipe(epochs=1, batch_size=4, lr=2e-4, lora_rank=32, max_length=4096)


def linear_decay_lr(step: int, total_steps: int, peak: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``total_steps``: linear decay, no warm-up."""
    if total_steps < 1:
        raise ValueError("total_steps must be at least 1")
    if not 0 <= step < total_steps:
        raise ValueError(f"step {step} is outside 0..{total_steps - 1}")
    return peak * (1.0 - step / total_steps)


def n_steps(n_examples: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps of a run: ``epochs * ceil(n_examples / batch_size)`` (last batch may be short)."""
    return epochs * math.ceil(n_examples / batch_size)


def batches(
    items: Sequence[T], batch_size: int, *, epochs: int = 1, shuffle: bool = False, seed: int = 0
) -> Iterator[list[T]]:
    """Consecutive batches over ``epochs`` passes; file order unless ``shuffle``.

    With ``shuffle`` each epoch uses its own permutation from
    ``random.Random(seed + epoch)``. The last batch of an epoch may be short;
    batches never span two epochs.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    for epoch in range(epochs):
        order = list(range(len(items)))
        if shuffle:
            random.Random(seed + epoch).shuffle(order)
        for start in range(0, len(order), batch_size):
            yield [items[i] for i in order[start : start + batch_size]]

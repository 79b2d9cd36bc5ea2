"""Labels every layer shares: the missing rating, the self-mode persona id, variant names.

These are conventions of the published data format (PROTOCOL.md), defined
once here, at the bottom layer, so that ``stats``, ``store``, ``collect``,
``simulate``, ``finetune`` and ``report`` agree on them.
"""

from __future__ import annotations

from typing import Final

MISSING_RATING: Final = -1
"""``rating`` of a slot whose answer could not be parsed (no scale value)."""

SELF_PERSONA_ID: Final = -1
"""``persona_id`` of every row of a self-mode run (the item prompt alone, no persona)."""

BASE: Final = "base"
"""Variant label of the model before any fine-tuning."""

SECURE: Final = "secure"
"""Variant label of the model fine-tuned on secure code (the control of Betley et al. 2025)."""

INSECURE: Final = "insecure"
"""Variant label of the model fine-tuned on insecure code (emergent misalignment)."""

VARIANT_LABELS: Final = (BASE, SECURE, INSECURE)
"""The published variants, in their conventional order."""

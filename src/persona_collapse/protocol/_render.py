"""The exact chat sent for one slot: one user message, no system message."""

from __future__ import annotations

import hashlib
import json

from ..instruments import Instrument, Item
from ._chat import Message


def slot_prompt(
    instrument: Instrument, item: Item | int, persona: str | None, *, logprobs: bool = False
) -> str:
    """The user message for a slot: persona template (or self template when ``persona`` is None),
    with the instrument's logprob suffix appended in logprob mode. A task
    instrument's message is the item's prompt alone (``persona`` is not used)."""
    if instrument.kind == "task":
        text = instrument.item_prompt(item)
    elif persona is None:
        text = instrument.self_prompt(item)
    else:
        text = instrument.persona_prompt(item, persona)
    return text + instrument.logprob_suffix if logprobs else text


def slot_messages(
    instrument: Instrument, item: Item | int, persona: str | None, *, logprobs: bool = False
) -> list[Message]:
    """The chat for a slot, as published: a single user message."""
    return [{"role": "user", "content": slot_prompt(instrument, item, persona, logprobs=logprobs)}]


def protocol_hash(instrument: Instrument, settings_json: str) -> str:
    """sha256 over the instrument definition and the decoding settings: equal hashes, equal prompts."""
    payload = json.dumps({"instrument": instrument.content_hash, "settings": settings_json})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()

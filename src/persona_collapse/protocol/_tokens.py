"""The one token estimate: plans, spend caps and batch pricing all count with it.

An estimate, not a tokenizer: ``ceil(characters / CHARS_PER_TOKEN)`` plus
:data:`MESSAGE_OVERHEAD_TOKENS` for the chat framing of a message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

CHARS_PER_TOKEN = 4.0
"""Characters per token of English text (OpenAI's rule of thumb); prompts here are English."""

MESSAGE_OVERHEAD_TOKENS = 7
"""Chat framing of one user message: 3 per message, 1 for the role, 3 priming the reply."""


def estimate_tokens(text: str) -> int:
    """Tokens of one user message holding ``text``: ceil(chars / 4) + the chat framing."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS


def estimate_request_tokens(messages: Iterable[Mapping[str, str]]) -> int:
    """Estimated prompt tokens of a chat: the messages' characters counted as one text."""
    return estimate_tokens("".join(m.get("content", "") for m in messages))

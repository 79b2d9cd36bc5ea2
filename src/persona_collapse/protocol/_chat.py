"""The chat values every driver moves: one request, one result, the message shape.

A slot's protocol (:mod:`._slot_protocol`) speaks in these; the backends
(``persona_collapse.backends``) answer them and re-export the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass

Message = dict[str, str]
"""One chat message: ``{"role": ..., "content": ...}``."""


@dataclass(frozen=True)
class ChatRequest:
    """One request: the chat and its decoding settings.

    ``top_logprobs``: ask for that many alternatives of the first token
    (OpenAI-compatible, HF and vLLM backends; Anthropic has no logprobs and
    refuses). ``seed``: forwarded where the provider accepts it (OpenAI-compatible,
    simulated). ``timeout_s``: per-request timeout honoured by every HTTP backend.
    """

    messages: list[Message]
    temperature: float
    max_tokens: int
    top_logprobs: int | None = None
    seed: int | None = None
    timeout_s: float = 60.0


@dataclass(frozen=True)
class ChatResult:
    """A completed request. ``top_logprobs``: (token, natural-log probability) of the first token."""

    text: str
    top_logprobs: list[tuple[str, float]] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None

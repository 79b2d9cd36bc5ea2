"""The values that cross the backend interface: requests, results, decisions, model names.

A backend (:class:`persona_collapse.backends.Backend`) answers one
:class:`ChatRequest` at a time (the runner keeps many in flight); it returns a
:class:`ChatResult` with text and, when asked, the top-k logprobs of the first
token. Failures are raised as :class:`BackendError` carrying a typed
:data:`RetryDecision`, so the runner's policy never inspects SDK exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Message = dict[str, str]


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


@dataclass(frozen=True)
class Retry:
    """Try the request again. ``after_s``: the server's Retry-After, if it sent one.

    ``kind``: ``rate_limit`` (shrink concurrency), ``transient`` (5xx, connection
    reset), ``timeout``, or ``malformed``: an HTTP 200 whose body is no answer at
    all (cut-off JSON, an HTML gateway page, an error object, a body outside the
    API's schema). A malformed body is a transport fault, never a model's
    unparseable answer: it is retried like a 5xx and never counts as a protocol
    attempt.
    """

    kind: Literal["rate_limit", "transient", "timeout", "malformed"]
    after_s: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Fatal:
    """Stop the whole run: retrying cannot help (bad key, unknown model, bad URL)."""

    message: str


@dataclass(frozen=True)
class BadAnswer:
    """A well-formed response that is no usable answer (e.g. a content-filter refusal).

    It counts as one protocol attempt. A body that cannot be read at all is a
    :class:`Retry` of kind ``malformed`` instead.
    """

    detail: str = ""


RetryDecision = Retry | Fatal | BadAnswer


class BackendError(Exception):
    """A failed request with the decision the runner should take."""

    def __init__(self, decision: RetryDecision) -> None:
        super().__init__(decision.message if isinstance(decision, Fatal) else decision.detail)
        self.decision = decision


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name ``family/model-name`` (e.g. ``openai/gpt-4o-2024-08-06``)."""

    family: str
    name: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def full(self) -> str:
        return f"{self.family}/{self.name}"

"""The values that cross the backend interface: requests, results, decisions, model names.

A backend (:class:`persona_collapse.backends.Backend`) answers one
:class:`ChatRequest` at a time (the runner keeps many in flight); it returns a
:class:`ChatResult` with text and, when asked, the top-k logprobs of the first
token. Failures are raised as :class:`BackendError` carrying a typed
:data:`RetryDecision`, so the runner's policy never inspects SDK exceptions.
The chat values (``ChatRequest``, ``ChatResult``, ``Message``) are defined
once in :mod:`persona_collapse.protocol` and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..protocol import ChatRequest, ChatResult, Message

__all__ = [
    "BackendError",
    "BadAnswer",
    "ChatRequest",
    "ChatResult",
    "Fatal",
    "Message",
    "ModelSpec",
    "Retry",
    "RetryDecision",
]


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

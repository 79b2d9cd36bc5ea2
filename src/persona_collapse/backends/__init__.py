"""Model clients behind one contract, the :class:`Backend` base class.

Create one with :func:`create_backend` from a model name ``family/model-name``;
SDKs are imported only when their family is used. Each backend's
``complete(request)`` answers one :class:`ChatRequest` or raises
:class:`BackendError` carrying the runner's decision (:class:`Retry`,
:class:`Fatal` or :class:`BadAnswer`). Every backend also has ``check()``
(HTTP backends send one cheap real request that turns a bad URL, key or model
into :class:`Fatal` before a run starts; the others have nothing to check),
``describe()``, ``preferred_concurrency``, ``supports_logprobs``,
``simulated``, ``secrets`` and ``aclose()``, with the defaults documented on
:class:`Backend`.
"""

from __future__ import annotations

from ._backend import DEFAULT_CONCURRENCY, Backend
from ._decisions import parse_retry_after, redact
from ._keys import api_key_from_env
from ._prices import DEFAULT_PRICES, PRICES_ENV, Price, load_prices, price_for
from ._registry import FAMILIES, PLACEHOLDER_KEY, create_backend, known_families, parse_model
from ._types import (
    BackendError,
    BadAnswer,
    ChatRequest,
    ChatResult,
    Fatal,
    Message,
    ModelSpec,
    Retry,
    RetryDecision,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PRICES",
    "FAMILIES",
    "PLACEHOLDER_KEY",
    "PRICES_ENV",
    "Backend",
    "BackendError",
    "BadAnswer",
    "ChatRequest",
    "ChatResult",
    "Fatal",
    "Message",
    "ModelSpec",
    "Price",
    "Retry",
    "RetryDecision",
    "api_key_from_env",
    "create_backend",
    "known_families",
    "load_prices",
    "parse_model",
    "parse_retry_after",
    "price_for",
    "redact",
]

"""Model clients behind one small interface (see :mod:`._types`).

Create one with :func:`create_backend` from a model name ``family/model-name``;
SDKs are imported only when their family is used. Each backend's
``complete(request)`` answers one :class:`ChatRequest` or raises
:class:`BackendError` carrying the runner's decision (:class:`Retry`,
:class:`Fatal` or :class:`BadAnswer`). HTTP backends also offer
``check()``, one cheap real request that turns a bad URL, key or model into
:class:`Fatal` before a run starts; :func:`check_backend` calls it when present.
"""

from __future__ import annotations

from ._decisions import parse_retry_after, redact
from ._keys import api_key_from_env
from ._prices import DEFAULT_PRICES, PRICES_ENV, Price, load_prices, price_for
from ._registry import FAMILIES, PLACEHOLDER_KEY, create_backend, known_families, parse_model
from ._types import (
    Backend,
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


async def check_backend(backend: Backend, *, timeout_s: float = 30.0) -> None:
    """Run ``backend.check()`` if it has one (raises :class:`BackendError` with :class:`Fatal`)."""
    check = getattr(backend, "check", None)
    if check is not None:
        await check(timeout_s=timeout_s)


def describe_backend(backend: Backend) -> str:
    """One line about ``backend`` (simulated backends say SIMULATED); never holds a key."""
    describe = getattr(backend, "describe", None)
    if callable(describe):
        return str(describe())
    return backend.spec.full


__all__ = [
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
    "check_backend",
    "create_backend",
    "describe_backend",
    "known_families",
    "load_prices",
    "parse_model",
    "parse_retry_after",
    "price_for",
    "redact",
]

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

Keys go only where they belong (:func:`key_for`): a provider's default
variable only to its official host (:func:`official_key_hosts`), any other
URL only a key named with ``--api-key-env``.
"""

from __future__ import annotations

from ._backend import DEFAULT_CONCURRENCY, Backend
from ._batch_api import (
    UNREADABLE,
    BatchAPI,
    BatchItem,
    BatchLimits,
    BatchNotCreated,
    BatchStatus,
    ResultsGone,
)
from ._decisions import host_of, parse_retry_after, redact
from ._keys import KeyChoice, api_key_from_env, choose_key, plain_http_warning
from ._prices import (
    DEFAULT_PRICES,
    PRICES_ENV,
    Price,
    batch_discount,
    batch_price,
    genai_prices_version,
    load_prices,
    price_for,
    unknown_price_hint,
)
from ._registry import (
    FAMILIES,
    PLACEHOLDER_KEY,
    create_backend,
    key_for,
    known_families,
    official_key_hosts,
    parse_model,
)
from ._tinker import require_tinker_credentials
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
    "UNREADABLE",
    "Backend",
    "BackendError",
    "BadAnswer",
    "BatchAPI",
    "BatchItem",
    "BatchLimits",
    "BatchNotCreated",
    "BatchStatus",
    "ChatRequest",
    "ChatResult",
    "Fatal",
    "KeyChoice",
    "Message",
    "ModelSpec",
    "Price",
    "ResultsGone",
    "Retry",
    "RetryDecision",
    "api_key_from_env",
    "batch_discount",
    "batch_price",
    "choose_key",
    "create_backend",
    "genai_prices_version",
    "host_of",
    "key_for",
    "known_families",
    "load_prices",
    "official_key_hosts",
    "parse_model",
    "parse_retry_after",
    "plain_http_warning",
    "price_for",
    "redact",
    "require_tinker_credentials",
    "unknown_price_hint",
]

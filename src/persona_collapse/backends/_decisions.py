"""Turning HTTP failures into retry decisions, without any SDK import.

Both SDK backends (OpenAI-compatible and Anthropic) raise exceptions that carry
an HTTP status code, the response headers and a decoded body. The mapping from
those to a :data:`~persona_collapse.backends._types.RetryDecision` lives here,
so it is written once and unit-testable without a server.

Secrets: every text that leaves this module passes through :func:`redact`, so
an API key echoed by a server never reaches an error message or a log.
"""

from __future__ import annotations

import email.utils
import ipaddress
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from ._types import BadAnswer, Fatal, Retry, RetryDecision

#: Longest server message quoted in a decision.
_MAX_QUOTE = 200
#: Shapes of provider keys, redacted even when the key itself is unknown here.
_KEY_PATTERNS = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{6,}|sk-[A-Za-z0-9_\-]{6,}|xai-[A-Za-z0-9_\-]{6,}"
    r"|gsk_[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9_\-.]{6,})"
)


def redact(text: str, secrets: Iterable[str | None] = (), *, key_shapes: bool = True) -> str:
    """``text`` with every secret, and anything shaped like an API key, replaced by ``***``.

    ``key_shapes=False`` replaces only the given secrets (for a model's answer
    text, which is data: only a key this process holds is taken out of it).
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_PATTERNS.sub("***", text) if key_shapes else text


def one_line(text: str, limit: int = _MAX_QUOTE) -> str:
    """``text`` collapsed to one line of at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP-date).

    Returns ``None`` when neither header is present or readable; never negative.
    """
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        return max(0.0, value) if math.isfinite(value) else None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def body_message(body: object, fallback: str = "") -> str:
    """The human-readable message inside an error body (OpenAI and Anthropic shapes)."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message = inner.get("message")
            if isinstance(message, str) and message.strip():
                return message
        elif isinstance(inner, str) and inner.strip():
            return inner
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return message
    elif isinstance(body, str) and body.strip() and not body.lstrip().startswith("<"):
        return body
    return fallback


def body_code(body: object) -> str:
    """The machine-readable code or type inside an error body, lower-case ('' if none)."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            for key in ("code", "type"):
                value = inner.get(key)
                if isinstance(value, str | int) and str(value):
                    return str(value).lower()
    return ""


@dataclass(frozen=True)
class Where:
    """What a decision message names: the model, the server and the key's env var."""

    model: str
    base_url: str
    key_env: str | None = None
    provider: str = "the server"
    #: How the base URL should look, for messages about 404s.
    url_hint: str = "the API root (often ending in /v1)"

    @property
    def key_hint(self) -> str:
        if self.key_env:
            return f"check {self.key_env} (or name another variable with --api-key-env)"
        return "check the API key variable named by --api-key-env"


#: Error codes and phrases of a 400 that refuses one prompt's content, not the request's form.
_FILTER_CODES = {"content_filter", "content_policy_violation", "invalid_prompt"}
_FILTER_PHRASES = ("content management policy", "flagged as potentially violating")


def decision_for_status(
    status: int,
    *,
    headers: Mapping[str, str] | None,
    body: object,
    message: str,
    where: Where,
    secrets: Iterable[str | None] = (),
) -> RetryDecision:
    """The decision for an HTTP error response ``status`` from ``where``."""
    secrets = tuple(secrets)
    quote = one_line(redact(body_message(body, message), secrets))
    code = body_code(body)
    after = parse_retry_after(headers)
    tag = f"HTTP {status}"
    if status == 429:
        if "insufficient_quota" in code or ("exceeded your current quota" in quote.lower()):
            return Fatal(
                f"{where.provider} says the account is out of quota for {where.model} "
                f"({tag}: {quote}); add credits or use another key"
            )
        return Retry("rate_limit", after_s=after, detail=f"{tag}: {quote}")
    if status in (408, 409, 425) or status >= 500:
        return Retry("transient", after_s=after, detail=f"{tag}: {quote}")
    if status == 401:
        return Fatal(
            f"{where.provider} at {where.base_url} rejected the API key for {where.model} "
            f"({tag}); {where.key_hint}"
        )
    if status == 403:
        return Fatal(
            f"{where.provider} at {where.base_url} refused access to {where.model} "
            f"({tag}: {quote}); {where.key_hint} and that the key may use this model"
        )
    if status == 402:
        return Fatal(
            f"{where.provider} needs payment for {where.model} ({tag}: {quote}); "
            "add credits or use another key"
        )
    if status == 400 and (
        code in _FILTER_CODES or any(phrase in quote.lower() for phrase in _FILTER_PHRASES)
    ):
        # One flagged prompt must not end a whole run: the slot counts a failed attempt.
        return BadAnswer(one_line(f"the provider's content filter refused this prompt ({tag})"))
    if status == 404:
        return Fatal(
            f"unknown model {where.model!r} or wrong base URL {where.base_url} ({tag}: {quote}); "
            f"check the model name and that the URL is {where.url_hint}"
        )
    return Fatal(
        f"{where.provider} rejected the request for {where.model} ({tag}: {quote}); "
        "retrying cannot help: fix the model name or decoding settings"
    )


def malformed(detail: str, secrets: Iterable[str | None] = ()) -> Retry:
    """A transport fault for a body that is no answer: ``Retry("malformed")``, redacted detail.

    A 200 whose body is cut-off JSON, an HTML page, an error object or outside
    the API's schema was never an answer of the model, so it must not use one
    of the protocol's attempts (nor end up stored as a missing rating).
    """
    return Retry("malformed", detail=one_line(redact(detail, secrets)))


def error_in_body(body: object, secrets: Iterable[str | None] = ()) -> Retry | None:
    """``Retry("malformed")`` when a 200 body is an error object (``{"error": ...}``), else None."""
    error = body.get("error") if isinstance(body, Mapping) else getattr(body, "error", None)
    if error is None or (isinstance(body, Mapping) and "choices" in body):
        return None
    message = body_message({"error": error}, fallback="no message")
    return malformed(f"HTTP 200 with an error object instead of an answer: {message}", secrets)


_PROVIDER_HOSTS = {
    "api.openai.com",
    "openrouter.ai",
    "api.together.xyz",
    "api.together.ai",
    "api.deepseek.com",
    "api.x.ai",
    "api.anthropic.com",
}


def host_of(url: str) -> str:
    """The lower-case host name of ``url`` ('' if none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def is_provider_host(url: str) -> bool:
    """Whether ``url`` points at a hosted provider that always needs a key."""
    host = host_of(url)
    return host in _PROVIDER_HOSTS or any(host.endswith("." + h) for h in _PROVIDER_HOSTS)


def is_local_host(url: str) -> bool:
    """Whether ``url`` points at this machine or a private network address."""
    host = host_of(url)
    if host in ("localhost", "") or host.endswith(".localhost") or host.endswith(".local"):
        return host != ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash, or a ValueError naming what is wrong."""
    text = str(url).strip()
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise ValueError(f"cannot read it as a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("it must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("it has no host name")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("its port is not a number from 0 to 65535") from None
    if parts.query or parts.fragment:
        raise ValueError("it must not have a ?query or #fragment")
    if parts.username or parts.password:
        raise ValueError(
            "it must not hold a user name or password (pass keys in an environment variable)"
        )
    return text.rstrip("/")


def sdk_field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``; ``None`` when absent (SDK objects are not validated)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


@dataclass(frozen=True)
class SDKErrors:
    """One SDK's exception types, from the most specific to the most general.

    ``timeout`` (no answer in time) is a kind of ``connection`` (no HTTP
    response); ``validation``: a 200 whose body breaks the API's schema;
    ``status``: an HTTP error status; ``api``: any other API error; ``base``:
    every exception of the SDK. ``name`` names the SDK in messages.
    """

    name: str
    timeout: type[BaseException]
    connection: type[BaseException]
    validation: type[BaseException]
    status: type[BaseException]
    api: type[BaseException]
    base: type[BaseException]

    @classmethod
    def of(cls, name: str, sdk: ModuleType, base: type[BaseException]) -> SDKErrors:
        """The exception types of a Stainless-generated SDK module (``openai``,
        ``anthropic``): the same class names in each, and the SDK's own ``base``."""
        return cls(
            name=name,
            timeout=sdk.APITimeoutError,
            connection=sdk.APIConnectionError,
            validation=sdk.APIResponseValidationError,
            status=sdk.APIStatusError,
            api=sdk.APIError,
            base=base,
        )


def decision_for_sdk_error(
    exc: BaseException, errors: SDKErrors, where: Where, secrets: tuple[str, ...] = ()
) -> RetryDecision | None:
    """The decision for an exception of the SDK ``errors`` describes; ``None`` for any other.

    Timeout -> Retry timeout; no connection -> Retry transient; a body outside
    the schema -> Retry malformed; an HTTP status -> :func:`decision_for_status`
    (429 rate limit with Retry-After, 5xx / 408 / 409 transient, 401 / 403 /
    404 / other 4xx fatal); another API error -> Retry transient; anything else
    from the SDK -> Fatal.
    """
    if isinstance(exc, errors.timeout):
        return Retry("timeout", detail=f"no answer from {where.base_url} in time")
    if isinstance(exc, errors.connection):
        cause = exc.__cause__ or exc.__context__
        why = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        return Retry("transient", detail=one_line(redact(f"connection failed ({why})", secrets)))
    message = str(getattr(exc, "message", exc))
    if isinstance(exc, errors.validation):
        return malformed(f"response does not follow the API schema: {message}", secrets)
    if isinstance(exc, errors.status):
        headers = getattr(getattr(exc, "response", None), "headers", None)
        return decision_for_status(
            int(getattr(exc, "status_code", 0)),
            headers=headers,
            body=getattr(exc, "body", None),
            message=message,
            where=where,
            secrets=secrets,
        )
    if isinstance(exc, errors.api):
        return Retry("transient", detail=one_line(redact(f"{type(exc).__name__}: {exc}", secrets)))
    if isinstance(exc, errors.base):
        return Fatal(one_line(redact(f"{errors.name} SDK error for {where.model}: {exc}", secrets)))
    return None

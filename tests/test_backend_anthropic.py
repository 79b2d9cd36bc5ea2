"""The Anthropic backend: no logprobs, its base URL, and its decision mapping (offline)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from persona_collapse.backends import (
    Fatal,
    Retry,
    create_backend,
)
from persona_collapse.backends.decisions import NO_LOGPROBS, Where, decision_for_anthropic_error
from persona_collapse.instruments import load_instrument

from .backend_helpers import (
    FAKE_KEY,
    REQ,
    anthropic_backend,
    clear_provider_keys,
    failure,
    http_response,
    persona_request,
    serve,
    using,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def mfq() -> Any:
    return load_instrument("mfq30")


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see real keys of the person running them."""
    clear_provider_keys(monkeypatch)


# -- over the loopback server ------------------------------------------------------------------


def test_anthropic_refuses_logprobs(mfq: Any) -> None:
    with serve() as server:
        backend = anthropic_backend(server)
        assert not backend.supports_logprobs
        exc = failure(backend, persona_request(mfq, 1, temperature=1.0, top_logprobs=20))
    assert exc.decision == Fatal(NO_LOGPROBS)
    assert str(exc) == "Anthropic's API returns no logprobs; use --method sample"


def test_anthropic_base_url_with_v1_still_works(mfq: Any) -> None:
    with serve() as server:
        backend = create_backend(
            "anthropic/sim-base", base_url=server.anthropic_base_url + "/v1/", api_key=FAKE_KEY
        )
        assert backend.spec.extra["base_url"] == server.anthropic_base_url
        result = using(backend, lambda b: b.complete(persona_request(mfq)))
    assert result.text


# -- decision mapping, offline -----------------------------------------------------------------


@pytest.mark.parametrize(
    "exc_type, status, expected, kind",
    [
        (anthropic.RateLimitError, 429, Retry, "rate_limit"),
        (anthropic.OverloadedError, 529, Retry, "transient"),
        (anthropic.InternalServerError, 500, Retry, "transient"),
        (anthropic.ServiceUnavailableError, 503, Retry, "transient"),
        (anthropic.GatewayTimeoutError, 504, Retry, "transient"),
        (anthropic.RequestTimeoutError, 408, Retry, "transient"),
        (anthropic.ConflictError, 409, Retry, "transient"),
        (anthropic.AuthenticationError, 401, Fatal, None),
        (anthropic.PermissionDeniedError, 403, Fatal, None),
        (anthropic.NotFoundError, 404, Fatal, None),
        (anthropic.BadRequestError, 400, Fatal, None),
        (anthropic.PaymentRequiredError, 402, Fatal, None),
        (anthropic.ContentTooLargeError, 413, Fatal, None),
    ],
)
def test_anthropic_status_mapping(
    exc_type: type, status: int, expected: type, kind: str | None
) -> None:
    where = Where(
        "anthropic/claude-haiku-4-5", "https://api.anthropic.com", "ANTHROPIC_API_KEY", "Anthropic"
    )
    body = {"type": "error", "error": {"type": "x", "message": "m"}}
    headers = {"retry-after": "12"} if status == 429 else {}
    exc = exc_type("x", response=http_response(status, headers), body=body)
    decision = decision_for_anthropic_error(exc, where)
    assert isinstance(decision, expected)
    if kind:
        assert decision.kind == kind  # type: ignore[union-attr]
    if status == 429:
        assert decision.after_s == 12.0  # type: ignore[union-attr]
    if status == 401:
        assert "ANTHROPIC_API_KEY" in decision.message  # type: ignore[union-attr]


def test_anthropic_connection_and_timeout() -> None:
    where = Where("anthropic/x", "https://api.anthropic.com", "ANTHROPIC_API_KEY")
    timeout = decision_for_anthropic_error(anthropic.APITimeoutError(request=REQ), where)
    conn = decision_for_anthropic_error(anthropic.APIConnectionError(request=REQ), where)
    assert isinstance(timeout, Retry) and timeout.kind == "timeout"
    assert isinstance(conn, Retry) and conn.kind == "transient"
    assert decision_for_anthropic_error(KeyError("x"), where) is None

"""The OpenAI-compatible backend: logprobs and seeds over real HTTP, wire shapes, decisions.

Wire shapes the simulator never sends come from a tiny stdlib HTTP server; the
decision mapping is unit-tested offline with SDK exception objects built from
``httpx2`` responses.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from persona_collapse.backends import (
    Backend,
    BadAnswer,
    ChatRequest,
    ChatResult,
    Fatal,
    Retry,
    create_backend,
    parse_retry_after,
)
from persona_collapse.backends.decisions import decision_for_openai_error
from persona_collapse.instruments import load_instrument

from .backend_helpers import (
    DIGITS,
    FAKE_KEY,
    REQ,
    WHERE,
    assert_no_key,
    assert_one_line,
    clear_provider_keys,
    failure,
    http_response,
    openai_backend,
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


def test_logprobs_come_back(mfq: Any) -> None:
    with serve() as server:
        backend = openai_backend(server)
        assert backend.supports_logprobs
        request = persona_request(mfq, 7, temperature=1.0, top_logprobs=20, seed=3)
        result = using(backend, lambda b: b.complete(request))
    assert result.top_logprobs
    tokens = [tok for tok, _ in result.top_logprobs]
    assert {t.strip() for t in tokens} & DIGITS
    assert all(lp <= 0 for _, lp in result.top_logprobs)
    assert sum(math.exp(lp) for _, lp in result.top_logprobs) <= 1 + 1e-6


def test_seed_is_forwarded_and_reproducible(mfq: Any) -> None:
    with serve() as server:
        requests = [persona_request(mfq, i, temperature=1.0, seed=11) for i in range(1, 11)]

        async def body(b: Backend) -> list[str]:
            return [(await b.complete(r)).text for r in requests]

        first = using(openai_backend(server), body)
        second = using(openai_backend(server), body)
    assert first == second


def test_messages_name_the_server_not_a_provider_for_custom_urls() -> None:
    local = create_backend("openai/m", base_url="http://127.0.0.1:1/v1", api_key=FAKE_KEY)
    hosted = create_backend("openai/m", api_key=FAKE_KEY)
    assert "OpenAI-compatible server" in local.describe()
    assert "via OpenAI at https://api.openai.com/v1" in hosted.describe()
    for b in (local, hosted):
        asyncio.run(b.aclose())


# -- wire shapes the simulator never sends (tiny stdlib server) --------------------------------


class _Stub(BaseHTTPRequestHandler):
    """Answers POST /v1/chat/completions from ``server.reply(body) -> (status, headers, bytes)``."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.seen.append(body)  # type: ignore[attr-defined]
        status, headers, payload = self.server.reply(body)  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def stub(reply: Callable[[dict[str, Any]], tuple[int, dict[str, str], bytes]]) -> Iterator[Any]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    httpd.reply = reply  # type: ignore[attr-defined]
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


JSON = {"content-type": "application/json"}


def completion(text: str = "3", logprobs: object = None, **extra: Any) -> bytes:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "length",
    }
    if logprobs is not None:
        choice["logprobs"] = logprobs
    body = {"id": "x", "object": "chat.completion", "choices": [choice], **extra}
    return json.dumps(body).encode()


def stub_backend(httpd: Any, model: str = "openai/m") -> Backend:
    return create_backend(
        model, base_url=f"http://127.0.0.1:{httpd.server_port}/v1", api_key=FAKE_KEY
    )


def test_max_completion_tokens_fallback() -> None:
    def reply(body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if "max_tokens" in body:
            error = {
                "error": {
                    "message": "Unsupported parameter: 'max_tokens' is not supported with this "
                    "model. Use 'max_completion_tokens' instead.",
                    "type": "invalid_request_error",
                    "param": "max_tokens",
                    "code": "unsupported_parameter",
                }
            }
            return 400, JSON, json.dumps(error).encode()
        return 200, JSON, completion("4")

    with stub(reply) as httpd:
        backend = stub_backend(httpd)
        request = ChatRequest([{"role": "user", "content": "hi"}], 0.1, 1, seed=5)

        async def body(b: Backend) -> list[ChatResult]:
            return [await b.complete(request), await b.complete(request)]

        results = using(backend, body)
        seen = httpd.seen
    assert [r.text for r in results] == ["4", "4"]
    assert "max_tokens" in seen[0] and seen[1]["max_completion_tokens"] == 1
    assert "max_tokens" not in seen[2] and seen[2]["max_completion_tokens"] == 1
    assert seen[1]["seed"] == 5 and seen[1]["temperature"] == 0.1
    assert len(seen) == 3


@pytest.mark.parametrize(
    "status, headers, payload",
    [
        (200, JSON, b'{"id": "x", "object": "chat.completion"}'),  # no choices
        (200, JSON, b'{"choices": []}'),
        (200, JSON, b'{"choices": [{"index": 0}]}'),  # no message
        (200, {"content-type": "text/html"}, b"<html>proxy says hi</html>"),
        (200, JSON, b'{"choices": [{"message": {"content": "3"'),  # cut
        (200, JSON, b'{"error": {"message": "upstream failed", "type": "server_error"}}'),
    ],
    ids=["no-choices", "empty-choices", "no-message", "html", "cut", "error-object"],
)
def test_unreadable_bodies_are_transport_faults_not_answers(
    status: int, headers: dict[str, str], payload: bytes
) -> None:
    """A 200 whose body is no answer is retried by the transport, never a protocol attempt."""
    with stub(lambda body: (status, headers, payload)) as httpd:
        exc = failure(stub_backend(httpd), ChatRequest([{"role": "user", "content": "hi"}], 0.1, 1))
    assert isinstance(exc.decision, Retry) and exc.decision.kind == "malformed", exc.decision


def test_server_without_logprobs_is_fatal() -> None:
    with stub(lambda body: (200, JSON, completion("2"))) as httpd:
        request = ChatRequest([{"role": "user", "content": "hi"}], 1.0, 1, top_logprobs=20)
        exc = failure(stub_backend(httpd), request)
    assert isinstance(exc.decision, Fatal)
    assert "--method sample" in exc.decision.message


def test_refusal_is_an_answer_not_an_error() -> None:
    body = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
    with stub(lambda _: (200, JSON, json.dumps(body).encode())) as httpd:
        request = ChatRequest([{"role": "user", "content": "hi"}], 0.1, 1)
        result = using(stub_backend(httpd), lambda b: b.complete(request))
    assert result == ChatResult("I can't.", None, 9, 3, "stop")


def test_server_echoing_the_key_is_redacted() -> None:
    error = {"error": {"message": f"key {FAKE_KEY} is not allowed here", "type": "x"}}
    with stub(lambda _: (403, JSON, json.dumps(error).encode())) as httpd:
        exc = failure(stub_backend(httpd), ChatRequest([{"role": "user", "content": "hi"}], 0.1, 1))
    assert isinstance(exc.decision, Fatal)
    assert_no_key(exc, exc.decision)
    assert "***" in str(exc)


# -- decision mapping, offline -----------------------------------------------------------------


@pytest.mark.parametrize(
    "exc_type, status, expected",
    [
        (openai.RateLimitError, 429, Retry),
        (openai.InternalServerError, 500, Retry),
        (openai.InternalServerError, 502, Retry),
        (openai.InternalServerError, 503, Retry),
        (openai.APIStatusError, 408, Retry),
        (openai.ConflictError, 409, Retry),
        (openai.AuthenticationError, 401, Fatal),
        (openai.PermissionDeniedError, 403, Fatal),
        (openai.NotFoundError, 404, Fatal),
        (openai.BadRequestError, 400, Fatal),
        (openai.UnprocessableEntityError, 422, Fatal),
        (openai.APIStatusError, 402, Fatal),
    ],
)
def test_openai_status_mapping(exc_type: type, status: int, expected: type) -> None:
    exc = exc_type(f"Error code: {status}", response=http_response(status), body={"message": "m"})
    decision = decision_for_openai_error(exc, WHERE, (FAKE_KEY,))
    assert isinstance(decision, expected)
    if status == 429:
        assert decision.kind == "rate_limit"  # type: ignore[union-attr]
    elif expected is Retry:
        assert decision.kind == "transient"  # type: ignore[union-attr]


def test_openai_fatal_messages_name_the_fix() -> None:
    auth = openai.AuthenticationError("x", response=http_response(401), body={"message": "bad key"})
    missing = openai.NotFoundError("x", response=http_response(404), body={"message": "no model"})
    auth_d = decision_for_openai_error(auth, WHERE)
    missing_d = decision_for_openai_error(missing, WHERE)
    assert isinstance(auth_d, Fatal) and "check OPENAI_API_KEY" in auth_d.message
    assert isinstance(missing_d, Fatal) and "unknown model 'openai/gpt-4o'" in missing_d.message
    for d in (auth_d, missing_d):
        assert_one_line(d.message)


def test_retry_after_seconds_ms_and_http_date() -> None:
    def decision(headers: dict[str, str]) -> Any:
        exc = openai.RateLimitError("x", response=http_response(429, headers), body=None)
        return decision_for_openai_error(exc, WHERE)

    assert decision({"retry-after": "3"}) == Retry(
        "rate_limit", 3.0, decision({"retry-after": "3"}).detail
    )
    assert decision({"retry-after-ms": "1500"}).after_s == 1.5
    assert decision({}).after_s is None
    assert decision({"retry-after": "soon"}).after_s is None
    future = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert decision({"retry-after": future}).after_s == pytest.approx(120, abs=3)
    past = email.utils.formatdate(time.time() - 120, usegmt=True)
    assert decision({"retry-after": past}).after_s == 0.0
    assert parse_retry_after({"Retry-After": "-4"}) == 0.0
    assert parse_retry_after({"Retry-After": "nan"}) is None
    assert parse_retry_after(None) is None
    fixed = "Wed, 21 Oct 2015 07:28:00 GMT"
    now = email.utils.parsedate_to_datetime(fixed).timestamp() - 10
    assert parse_retry_after({"retry-after": fixed}, now=now) == pytest.approx(10)


def test_server_errors_carry_retry_after_too() -> None:
    exc = openai.InternalServerError(
        "x", response=http_response(503, {"retry-after": "4"}), body=None
    )
    assert decision_for_openai_error(exc, WHERE) == Retry("transient", 4.0, "HTTP 503: x")


def test_quota_exhaustion_is_fatal_not_a_rate_limit() -> None:
    body = {
        "message": "You exceeded your current quota, please check your plan.",
        "code": "insufficient_quota",
    }
    exc = openai.RateLimitError("x", response=http_response(429), body=body)
    decision = decision_for_openai_error(exc, WHERE)
    assert isinstance(decision, Fatal) and "quota" in decision.message


def test_openai_connection_and_timeout_and_schema_errors() -> None:
    assert decision_for_openai_error(openai.APITimeoutError(request=REQ), WHERE).kind == "timeout"  # type: ignore[union-attr]
    conn = decision_for_openai_error(openai.APIConnectionError(request=REQ), WHERE)
    assert isinstance(conn, Retry) and conn.kind == "transient"
    invalid = openai.APIResponseValidationError(http_response(200), body=None)
    schema = decision_for_openai_error(invalid, WHERE)
    assert isinstance(schema, Retry) and schema.kind == "malformed"
    assert decision_for_openai_error(ValueError("not ours"), WHERE) is None


def test_content_filter_refusal_is_a_bad_answer_not_fatal() -> None:
    body = {
        "message": "Invalid prompt: flagged as potentially violating our usage policy.",
        "code": "invalid_prompt",
    }
    exc = openai.BadRequestError("x", response=http_response(400), body=body)
    assert isinstance(decision_for_openai_error(exc, WHERE), BadAnswer)
    other = openai.BadRequestError(
        "x", response=http_response(400), body={"message": "bad temperature"}
    )
    assert isinstance(decision_for_openai_error(other, WHERE), Fatal)

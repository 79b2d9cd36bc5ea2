"""Backends through the official SDKs over real HTTP (the loopback server), and offline.

No SDK is mocked: the OpenAI and Anthropic clients talk to
``persona_collapse.testing.LoopbackServer`` (or, for a few wire shapes the
simulator never sends, a tiny stdlib HTTP server) on 127.0.0.1. The decision
mapping is also unit-tested offline with SDK exception objects built from
``httpx2`` responses.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import anthropic
import httpx2
import openai
import pytest

from persona_collapse.backends import (
    DEFAULT_PRICES,
    PLACEHOLDER_KEY,
    PRICES_ENV,
    Backend,
    BackendError,
    BadAnswer,
    ChatRequest,
    ChatResult,
    Fatal,
    ModelSpec,
    Price,
    Retry,
    check_backend,
    create_backend,
    describe_backend,
    known_families,
    parse_model,
    parse_retry_after,
    price_for,
    redact,
)
from persona_collapse.backends._anthropic import NO_LOGPROBS, decision_for_anthropic_error
from persona_collapse.backends._base import FIRST_CONTACT_TRIES
from persona_collapse.backends._decisions import Where, decision_for_status
from persona_collapse.backends._openai import OpenAIBackend, decision_for_openai_error
from persona_collapse.errors import ConfigError
from persona_collapse.instruments import load_instrument
from persona_collapse.protocol import slot_messages
from persona_collapse.testing import FaultConfig, LoopbackServer

FAKE_KEY = "sk-test-SECRET-1234567890"
PERSONA = "A retired schoolteacher who volunteers at the local food bank every weekend."
DIGITS = set("012345")
T = TypeVar("T")

pytestmark = pytest.mark.timeout(120)


# -- helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mfq() -> Any:
    return load_instrument("mfq30")


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see real keys of the person running them."""
    for env in (
        "OPENAI_API_KEY",
        "OPENROUTER_API_KEY",
        "ANTHROPIC_API_KEY",
        "TOGETHER_API_KEY",
        "DEEPSEEK_API_KEY",
        "XAI_API_KEY",
        "VLLM_API_KEY",
        "OLLAMA_API_KEY",
        "LLAMACPP_API_KEY",
        PRICES_ENV,
    ):
        monkeypatch.delenv(env, raising=False)


def persona_request(mfq: Any, item: int = 1, **kw: Any) -> ChatRequest:
    settings: dict[str, Any] = {"temperature": 0.1, "max_tokens": 1, "timeout_s": 10.0}
    settings.update(kw)
    logprobs = settings.get("top_logprobs") is not None
    return ChatRequest(messages=slot_messages(mfq, item, PERSONA, logprobs=logprobs), **settings)


@contextmanager
def serve(faults: FaultConfig | None = None) -> Iterator[LoopbackServer]:
    with LoopbackServer.for_variants(("base", "insecure"), faults=faults) as server:
        yield server


def using(backend: Backend, body: Callable[[Backend], Awaitable[T]]) -> T:
    """Run ``body(backend)`` in a fresh event loop and close the backend afterwards."""

    async def main() -> T:
        try:
            return await body(backend)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def failure(backend: Backend, request: ChatRequest) -> BackendError:
    """The BackendError of one request (fails the test if the request succeeds)."""

    async def body(b: Backend) -> BackendError:
        try:
            result = await b.complete(request)
        except BackendError as exc:
            return exc
        raise AssertionError(f"expected a BackendError, got {result!r}")

    return using(backend, body)


def openai_backend(server: LoopbackServer, model: str = "sim-base") -> Backend:
    return create_backend(f"openai/{model}", base_url=server.base_url, api_key=FAKE_KEY)


def anthropic_backend(server: LoopbackServer, model: str = "sim-base") -> Backend:
    return create_backend(
        f"anthropic/{model}", base_url=server.anthropic_base_url, api_key=FAKE_KEY
    )


BOTH = pytest.mark.parametrize(
    "make", [openai_backend, anthropic_backend], ids=["openai", "anthropic"]
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_no_key(*texts: object) -> None:
    for text in texts:
        assert FAKE_KEY not in str(text)
        assert "SECRET-1234567890" not in str(text)


def assert_one_line(text: str) -> None:
    assert "\n" not in text and text.strip() == text and text


# -- happy paths over real HTTP ------------------------------------------------------------


@BOTH
def test_persona_prompt_gets_a_digit(make: Callable[..., Backend], mfq: Any) -> None:
    with serve() as server:
        backend = make(server)
        assert isinstance(backend, Backend)

        async def body(b: Backend) -> list[ChatResult]:
            return [await b.complete(persona_request(mfq, item)) for item in (1, 2, 3, 4, 5)]

        results = using(backend, body)
    texts = [r.text for r in results]
    assert sum(t.strip() in DIGITS for t in texts) >= 4, texts
    assert all(r.prompt_tokens > 0 and r.completion_tokens == 1 for r in results)
    assert all(r.finish_reason in ("length", "max_tokens") for r in results)
    assert all(r.top_logprobs is None for r in results)


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


def test_anthropic_refuses_logprobs(mfq: Any) -> None:
    with serve() as server:
        backend = anthropic_backend(server)
        assert not backend.supports_logprobs
        exc = failure(backend, persona_request(mfq, 1, temperature=1.0, top_logprobs=20))
    assert exc.decision == Fatal(NO_LOGPROBS)
    assert str(exc) == "Anthropic's API returns no logprobs; use --method sample"


@BOTH
def test_check_passes_on_a_working_server(make: Callable[..., Backend]) -> None:
    with serve() as server:
        using(make(server), lambda b: check_backend(b, timeout_s=5))
        assert server.stats.requests == 1


# -- faults -> decisions over real HTTP ------------------------------------------------------


@BOTH
@pytest.mark.parametrize("wait", [7.0, 2.5])
def test_rate_limit_is_retry_with_the_servers_retry_after(
    make: Callable[..., Backend], wait: float, mfq: Any
) -> None:
    with serve(FaultConfig(rate_limit_rate=1.0, retry_after_s=wait)) as server:
        exc = failure(make(server), persona_request(mfq))
    assert isinstance(exc.decision, Retry)
    assert exc.decision.kind == "rate_limit"
    assert exc.decision.after_s == pytest.approx(wait)
    assert_no_key(exc, exc.decision)


@BOTH
def test_server_error_is_transient(make: Callable[..., Backend], mfq: Any) -> None:
    with serve(FaultConfig(server_error_rate=1.0)) as server:
        exc = failure(make(server), persona_request(mfq))
    assert isinstance(exc.decision, Retry)
    assert exc.decision.kind == "transient"
    assert "HTTP 50" in exc.decision.detail


@BOTH
def test_hang_is_a_timeout(make: Callable[..., Backend], mfq: Any) -> None:
    with serve(FaultConfig(timeout_rate=1.0, hang_s=20.0)) as server:
        started = time.monotonic()
        exc = failure(make(server), persona_request(mfq, timeout_s=0.5))
        elapsed = time.monotonic() - started
    assert exc.decision == Retry("timeout", detail=exc.decision.detail)  # type: ignore[union-attr]
    assert elapsed < 10


@BOTH
def test_malformed_body_is_bad_answer(make: Callable[..., Backend], mfq: Any) -> None:
    with serve(FaultConfig(malformed_rate=1.0)) as server:
        exc = failure(make(server), persona_request(mfq))
    assert isinstance(exc.decision, BadAnswer)


@BOTH
def test_unknown_model_is_fatal(make: Callable[..., Backend], mfq: Any) -> None:
    with serve() as server:
        exc = failure(make(server, "no-such-model"), persona_request(mfq))
    assert isinstance(exc.decision, Fatal)
    assert "unknown model" in exc.decision.message
    assert "no-such-model" in exc.decision.message
    assert_one_line(str(exc))


@BOTH
def test_rejected_key_is_fatal_and_never_shown(
    make: Callable[..., Backend], mfq: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with serve(FaultConfig(reject_key=FAKE_KEY)) as server:
        backend = make(server)
        exc = failure(backend, persona_request(mfq))
        check_exc = None
        try:
            using(make(server), lambda b: check_backend(b, timeout_s=5))
        except BackendError as e:
            check_exc = e
    assert isinstance(exc.decision, Fatal)
    assert "API key" in exc.decision.message
    assert "OPENAI_API_KEY" in exc.decision.message or "ANTHROPIC_API_KEY" in exc.decision.message
    assert check_exc is not None and isinstance(check_exc.decision, Fatal)
    assert_no_key(exc, exc.decision, repr(exc.decision), check_exc, repr(backend))
    assert_no_key(describe_backend(backend), caplog.text)
    assert exc.__cause__ is None  # the SDK exception (holding the request) is not chained


def test_unreachable_port_is_fatal_via_check() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = create_backend("openai/sim-base", base_url=url, api_key=FAKE_KEY)
    with pytest.raises(BackendError) as info:
        using(backend, lambda b: check_backend(b, timeout_s=5))
    decision = info.value.decision
    assert isinstance(decision, Fatal)
    assert "cannot reach" in decision.message and url in decision.message
    assert "--base-url" in decision.message
    assert_one_line(decision.message)
    assert_no_key(info.value, decision)


def test_unreachable_port_ends_the_first_requests(mfq: Any) -> None:
    """Without check(), connection failures before any answer turn fatal after a few tries."""
    url = f"http://127.0.0.1:{free_port()}"
    backend = create_backend("anthropic/sim-base", base_url=url, api_key=FAKE_KEY)

    async def body(b: Backend) -> list[BackendError]:
        errors = []
        for _ in range(FIRST_CONTACT_TRIES):
            try:
                await b.complete(persona_request(mfq))
            except BackendError as exc:
                errors.append(exc)
        return errors

    errors = using(backend, body)
    assert [type(e.decision) for e in errors] == [Retry] * (FIRST_CONTACT_TRIES - 1) + [Fatal]
    assert all(e.decision.kind == "transient" for e in errors[:-1])  # type: ignore[union-attr]
    assert "cannot reach" in str(errors[-1])


def test_connection_errors_after_contact_stay_transient(mfq: Any) -> None:
    server = LoopbackServer.for_variants(("base",)).start()
    backend = openai_backend(server)

    async def body(b: Backend) -> list[Any]:
        await b.complete(persona_request(mfq))
        server.stop()
        out = []
        for _ in range(FIRST_CONTACT_TRIES + 1):
            try:
                await b.complete(persona_request(mfq))
            except BackendError as exc:
                out.append(exc.decision)
        return out

    try:
        decisions = using(backend, body)
    finally:
        server.stop()
    assert decisions and all(isinstance(d, Retry) for d in decisions)
    assert {d.kind for d in decisions} == {"transient"}


@BOTH
def test_check_turns_unknown_model_fatal(make: Callable[..., Backend]) -> None:
    with serve() as server, pytest.raises(BackendError) as info:
        using(make(server, "gpt-nope"), lambda b: check_backend(b, timeout_s=5))
    assert isinstance(info.value.decision, Fatal)
    assert "gpt-nope" in str(info.value)


def test_check_tolerates_rate_limits_and_gives_up_on_hangs() -> None:
    with serve(FaultConfig(rate_limit_rate=1.0, retry_after_s=30)) as server:
        using(openai_backend(server), lambda b: check_backend(b, timeout_s=5))
    with serve(FaultConfig(timeout_rate=1.0, hang_s=20)) as server:
        backend = openai_backend(server)
        with pytest.raises(BackendError) as info:
            using(backend, lambda b: b.check(timeout_s=0.3, attempts=2))  # type: ignore[attr-defined]
    assert isinstance(info.value.decision, Fatal)
    assert "did not answer in time" in str(info.value)


def test_every_fault_keeps_the_key_out(mfq: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    configs = [
        FaultConfig(rate_limit_rate=1.0),
        FaultConfig(server_error_rate=1.0),
        FaultConfig(malformed_rate=1.0),
        FaultConfig(reject_key=FAKE_KEY),
        FaultConfig(timeout_rate=1.0, hang_s=5),
    ]
    for faults in configs:
        with serve(faults) as server:
            for make in (openai_backend, anthropic_backend):
                backend = make(server)
                texts += [repr(backend), describe_backend(backend)]
                exc = failure(backend, persona_request(mfq, timeout_s=0.5))
                texts += [str(exc), repr(exc), str(exc.decision), repr(exc.decision)]
    texts.append(caplog.text)
    assert_no_key(*texts)


# -- wire shapes the simulator never sends (tiny stdlib server) ------------------------------------


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
    ],
    ids=["no-choices", "empty-choices", "no-message", "html", "cut"],
)
def test_unreadable_bodies_are_bad_answers(
    status: int, headers: dict[str, str], payload: bytes
) -> None:
    with stub(lambda body: (status, headers, payload)) as httpd:
        exc = failure(stub_backend(httpd), ChatRequest([{"role": "user", "content": "hi"}], 0.1, 1))
    assert isinstance(exc.decision, BadAnswer), exc.decision


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


# -- decision mapping, offline --------------------------------------------------------------------

WHERE = Where(
    model="openai/gpt-4o",
    base_url="https://api.openai.com/v1",
    key_env="OPENAI_API_KEY",
    provider="OpenAI",
)
REQ = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")


def _response(status: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, headers=headers or {}, request=REQ)


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
    exc = exc_type(f"Error code: {status}", response=_response(status), body={"message": "m"})
    decision = decision_for_openai_error(exc, WHERE, (FAKE_KEY,))
    assert isinstance(decision, expected)
    if status == 429:
        assert decision.kind == "rate_limit"  # type: ignore[union-attr]
    elif expected is Retry:
        assert decision.kind == "transient"  # type: ignore[union-attr]


def test_openai_fatal_messages_name_the_fix() -> None:
    auth = openai.AuthenticationError("x", response=_response(401), body={"message": "bad key"})
    missing = openai.NotFoundError("x", response=_response(404), body={"message": "no model"})
    auth_d = decision_for_openai_error(auth, WHERE)
    missing_d = decision_for_openai_error(missing, WHERE)
    assert isinstance(auth_d, Fatal) and "check OPENAI_API_KEY" in auth_d.message
    assert isinstance(missing_d, Fatal) and "unknown model 'openai/gpt-4o'" in missing_d.message
    for d in (auth_d, missing_d):
        assert_one_line(d.message)


def test_retry_after_seconds_ms_and_http_date() -> None:
    def decision(headers: dict[str, str]) -> Any:
        exc = openai.RateLimitError("x", response=_response(429, headers), body=None)
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
    exc = openai.InternalServerError("x", response=_response(503, {"retry-after": "4"}), body=None)
    assert decision_for_openai_error(exc, WHERE) == Retry("transient", 4.0, "HTTP 503: x")


def test_quota_exhaustion_is_fatal_not_a_rate_limit() -> None:
    body = {
        "message": "You exceeded your current quota, please check your plan.",
        "code": "insufficient_quota",
    }
    exc = openai.RateLimitError("x", response=_response(429), body=body)
    decision = decision_for_openai_error(exc, WHERE)
    assert isinstance(decision, Fatal) and "quota" in decision.message


def test_openai_connection_and_timeout_and_schema_errors() -> None:
    assert decision_for_openai_error(openai.APITimeoutError(request=REQ), WHERE).kind == "timeout"  # type: ignore[union-attr]
    conn = decision_for_openai_error(openai.APIConnectionError(request=REQ), WHERE)
    assert isinstance(conn, Retry) and conn.kind == "transient"
    invalid = openai.APIResponseValidationError(_response(200), body=None)
    assert isinstance(decision_for_openai_error(invalid, WHERE), BadAnswer)
    assert decision_for_openai_error(ValueError("not ours"), WHERE) is None


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
    exc = exc_type("x", response=_response(status, headers), body=body)
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


def test_first_contact_rule_offline() -> None:
    backend = OpenAIBackend(
        ModelSpec("openai", "m"), base_url="http://127.0.0.1:9/v1", api_key=FAKE_KEY
    )
    decisions = [
        backend.decision_for(openai.APIConnectionError(request=REQ))
        for _ in range(FIRST_CONTACT_TRIES)
    ]
    assert all(isinstance(d, Retry) for d in decisions[:-1])
    assert isinstance(decisions[-1], Fatal)
    # once the server has answered (any HTTP status), connection errors are transient again
    backend = OpenAIBackend(
        ModelSpec("openai", "m"), base_url="http://127.0.0.1:9/v1", api_key=FAKE_KEY
    )
    backend.decision_for(openai.InternalServerError("x", response=_response(500), body=None))
    later = [backend.decision_for(openai.APIConnectionError(request=REQ)) for _ in range(5)]
    assert all(isinstance(d, Retry) for d in later)
    asyncio.run(backend.aclose())


def test_key_echoed_in_a_body_is_redacted_offline() -> None:
    decision = decision_for_status(
        400,
        headers=None,
        body={"error": {"message": f"bad {FAKE_KEY}!"}},
        message="x",
        where=WHERE,
        secrets=(FAKE_KEY,),
    )
    assert isinstance(decision, Fatal)
    assert_no_key(decision.message)
    assert redact("token sk-live-abcdefghijk and Bearer abc.def-ghi") == "token *** and ***"
    assert redact(f"x{FAKE_KEY}y", [FAKE_KEY]) == "x***y"


# -- names, keys, registry ---------------------------------------------------------------------


def test_parse_model() -> None:
    assert parse_model("openai/gpt-4o") == ModelSpec("openai", "gpt-4o")
    assert parse_model(" OpenRouter/qwen/qwen3-235b-a22b-2507 ") == ModelSpec(
        "openrouter", "qwen/qwen3-235b-a22b-2507"
    )
    assert parse_model("hf/Qwen/Qwen2.5-0.5B-Instruct").name == "Qwen/Qwen2.5-0.5B-Instruct"
    assert parse_model("sim/insecure").full == "sim/insecure"
    for family in ("openai", "anthropic", "sim", "hf", "vllm", "tinker", "openrouter"):
        assert family in known_families()


@pytest.mark.parametrize(
    "name, needle",
    [
        ("gpt-4o", "has no family"),
        ("/gpt-4o", "has no family"),
        ("mistral/large", "unknown model family 'mistral'"),
        ("openai/", "no model name"),
    ],
)
def test_bad_model_names(name: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_model(name)
    message = str(info.value)
    assert needle in message
    assert_one_line(message)
    if "family" in needle:
        assert "openai" in message and "anthropic" in message and "sim" in message
    with pytest.raises(ConfigError):
        create_backend(name)


@pytest.mark.parametrize(
    "model, env",
    [
        ("openai/gpt-4o", "OPENAI_API_KEY"),
        ("openrouter/qwen/qwen3-235b-a22b-2507", "OPENROUTER_API_KEY"),
        ("together/meta-llama/Llama-3-8b", "TOGETHER_API_KEY"),
        ("deepseek/deepseek-chat", "DEEPSEEK_API_KEY"),
        ("xai/grok-4", "XAI_API_KEY"),
        ("anthropic/claude-haiku-4-5", "ANTHROPIC_API_KEY"),
    ],
)
def test_missing_key_for_a_hosted_provider(model: str, env: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_backend(model)
    assert env in str(info.value)
    assert_one_line(str(info.value))


def test_key_from_env_and_placeholder_for_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    backend = create_backend("openai/gpt-4o")
    assert isinstance(backend, OpenAIBackend)
    assert backend.base_url == "https://api.openai.com/v1"
    assert_no_key(repr(backend), describe_backend(backend), backend.spec)
    asyncio.run(backend.aclose())
    monkeypatch.delenv("OPENAI_API_KEY")
    local = create_backend(
        "openai/Qwen/Qwen2.5-0.5B-Instruct", base_url="http://127.0.0.1:8000/v1/"
    )
    assert local._api_key == PLACEHOLDER_KEY  # type: ignore[attr-defined]
    assert local.spec.extra["base_url"] == "http://127.0.0.1:8000/v1"
    asyncio.run(local.aclose())
    # local families work without a key; a custom URL at a hosted provider still needs one
    for model in ("ollama/llama3", "llamacpp/any", "vllm/Qwen/Qwen2.5-0.5B-Instruct"):
        url = None if not model.startswith("vllm") else "http://localhost:8000/v1"
        b = create_backend(model, base_url=url)
        assert isinstance(b, OpenAIBackend)
        asyncio.run(b.aclose())
    with pytest.raises(ConfigError, match="OPENROUTER_API_KEY"):
        create_backend("openai/qwen/qwen3", base_url="https://openrouter.ai/api/v1")


def test_loopback_without_a_key_uses_the_placeholder(mfq: Any) -> None:
    with serve() as server:
        backend = create_backend("openai/sim-base", base_url=server.base_url)
        result = using(backend, lambda b: b.complete(persona_request(mfq)))
    assert result.text


@pytest.mark.parametrize(
    "url",
    [
        "localhost:8000",
        "ftp://example.com/v1",
        "http://",
        "http://host:99999/v1",
        "127.0.0.1",
        "http://u:pw@h/v1",
    ],
)
def test_bad_base_url(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_backend("openai/m", base_url=url, api_key=FAKE_KEY)
    message = str(info.value)
    assert message.startswith("bad base URL")
    assert_one_line(message)
    assert "pw" not in message


@pytest.mark.parametrize(
    "family, modules",
    [("hf", ("torch", "transformers")), ("vllm", ("vllm",)), ("tinker", ("tinker",))],
)
def test_missing_extra(
    family: str, modules: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ConfigError) as info:
        create_backend(f"{family}/some/model")
    message = str(info.value)
    assert f"{family}/... needs the {family} extra" in message
    assert f"pip install 'persona-collapse[{family}]'" in message
    assert_one_line(message)


def test_optional_backend_loads_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    class FakeHF:
        def __init__(self, spec: ModelSpec, *, seed: int = 0) -> None:
            self.spec, self.seed = spec, seed

    for module in ("torch", "transformers"):
        monkeypatch.setitem(sys.modules, module, types.ModuleType(module))
    fake = types.ModuleType("persona_collapse.backends._hf")
    fake.HFBackend = FakeHF  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "persona_collapse.backends._hf", fake)
    backend = create_backend("hf/Qwen/Qwen2.5-0.5B-Instruct", seed=4, api_key="ignored")
    assert isinstance(backend, FakeHF) and backend.seed == 4
    with pytest.raises(ConfigError, match="does not apply"):
        create_backend("hf/x", base_url="http://localhost:1/v1")


def test_sdks_are_imported_lazily() -> None:
    code = (
        "import sys, persona_collapse.backends as b\n"
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules\n"
        "b.create_backend('sim/base')\n"
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules\n"
        "b.create_backend('openai/m', base_url='http://127.0.0.1:1/v1')\n"
        "assert 'openai' in sys.modules and 'anthropic' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- simulated backend ----------------------------------------------------------------------------


def test_sim_backend_is_simulated_and_deterministic(mfq: Any) -> None:
    backend = create_backend("sim/insecure", seed=3)
    assert isinstance(backend, Backend)
    assert "SIMULATED" in describe_backend(backend)
    assert "SIMULATED" in repr(backend)
    assert backend.spec.extra.get("simulated") == "true"
    requests = [persona_request(mfq, i, temperature=1.0) for i in range(1, 31)] * 3

    async def body(b: Backend) -> list[str]:
        await check_backend(b)
        return [(await b.complete(r)).text for r in requests]

    first = using(backend, body)
    second = using(create_backend("sim/insecure", seed=3), body)
    other = using(create_backend("sim/insecure", seed=4), body)
    assert first == second
    assert first != other
    assert sum(t in DIGITS for t in first) >= 45  # insecure answers off-scale more often
    # repetitions of one prompt are fresh draws, not a cached answer
    assert len({first[i] for i in range(0, 90, 30)} | {first[i] for i in range(1, 90, 30)}) > 1


def test_sim_backend_logprobs_and_tokens(mfq: Any) -> None:
    backend = create_backend("sim/base")
    request = persona_request(mfq, 2, temperature=1.0, top_logprobs=20)
    result = using(backend, lambda b: b.complete(request))
    assert result.top_logprobs and {t.strip() for t, _ in result.top_logprobs} >= DIGITS
    assert result.prompt_tokens > 0 and result.completion_tokens == 1


def test_sim_backend_errors() -> None:
    with pytest.raises(ConfigError, match="sim/base"):
        create_backend("sim/nonsense")
    with pytest.raises(ConfigError, match="does not apply"):
        create_backend("sim/base", base_url="http://127.0.0.1:1/v1")
    backend = create_backend("sim/base")
    exc = failure(backend, ChatRequest([{"role": "user", "content": "x"}], 0.1, 0))
    assert isinstance(exc.decision, Fatal)


# -- prices -----------------------------------------------------------------------------------------


def test_builtin_prices() -> None:
    assert price_for("openai/gpt-4o-2024-08-06") == Price(2.50, 10.00)
    assert price_for("gpt-4o-mini") == Price(0.15, 0.60)
    assert price_for("openai/gpt-4o-mini-2024-07-18") == Price(0.15, 0.60)
    assert price_for("openai/gpt-4.1-mini") == Price(0.40, 1.60)
    assert price_for("openai/gpt-4.1-nano-2025-04-14") == Price(0.10, 0.40)
    assert price_for("gpt-4.1") == Price(2.00, 8.00)
    assert price_for("anthropic/claude-sonnet-4-5") == Price(3, 15)
    assert price_for("anthropic/claude-haiku-4-5-20251001") == Price(1, 5)
    assert price_for("openrouter/openai/gpt-4o-2024-08-06") == Price(2.50, 10.00)
    assert price_for("sim/insecure") == Price(0, 0)
    assert price_for("openai/gpt-unknown") is None
    assert price_for("hf/Qwen/Qwen2.5-0.5B-Instruct") is None
    assert Price(2.50, 10.00).cost(1_000_000, 100_000) == pytest.approx(3.50)
    assert Price(0.15, 0.60).cost(3000, 30) == pytest.approx(0.000468)
    assert "gpt-4o-2024-08-06" in DEFAULT_PRICES


def test_user_prices_from_file_and_env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text(
        '["openai/my-ft"]\ninput = 0.3\noutput = 1.2\n\n["gpt-4o-mini"]\ninput = 1\noutput = 2\n'
    )
    js = tmp_path / "prices.json"
    js.write_text(
        json.dumps(
            {"prices": {"together/*": [0.2, 0.2], "openai/my-ft": {"input": 9, "output": 9}}}
        )
    )
    assert price_for("openai/my-ft", prices_file=toml) == Price(0.3, 1.2)
    assert price_for("openai/gpt-4o-mini-2024-07-18", prices_file=toml) == Price(1, 2)
    assert price_for("openai/gpt-4.1", prices_file=toml) == Price(2.00, 8.00)
    monkeypatch.setenv(PRICES_ENV, str(js))
    assert price_for("together/meta-llama/x") == Price(0.2, 0.2)
    assert price_for("openai/my-ft") == Price(9, 9)
    assert price_for("openai/my-ft", prices_file=toml) == Price(0.3, 1.2)  # the argument wins


@pytest.mark.parametrize(
    "name, text, needle",
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("bad.toml", "[x\n", "not valid TOML"),
        ("neg.json", '{"m": [-1, 2]}', ">= 0"),
        ("half.json", '{"m": {"input": 1}}', "both input and output"),
        ("odd.json", '{"m": {"inp": 1, "output": 2}}', "unknown field"),
        ("list.json", "[1, 2]", "must map model names"),
    ],
)
def test_bad_price_files(tmp_path: Any, name: str, text: str, needle: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        price_for("m", prices_file=path)
    assert needle in str(info.value)
    assert_one_line(str(info.value))
    with pytest.raises(ConfigError, match="cannot read price file"):
        price_for("m", prices_file=tmp_path / "missing.json")


def test_content_filter_refusal_is_a_bad_answer_not_fatal() -> None:
    body = {
        "message": "Invalid prompt: flagged as potentially violating our usage policy.",
        "code": "invalid_prompt",
    }
    exc = openai.BadRequestError("x", response=_response(400), body=body)
    assert isinstance(decision_for_openai_error(exc, WHERE), BadAnswer)
    other = openai.BadRequestError(
        "x", response=_response(400), body={"message": "bad temperature"}
    )
    assert isinstance(decision_for_openai_error(other, WHERE), Fatal)


def test_anthropic_base_url_with_v1_still_works(mfq: Any) -> None:
    with serve() as server:
        backend = create_backend(
            "anthropic/sim-base", base_url=server.anthropic_base_url + "/v1/", api_key=FAKE_KEY
        )
        assert backend.spec.extra["base_url"] == server.anthropic_base_url
        result = using(backend, lambda b: b.complete(persona_request(mfq)))
    assert result.text


def test_messages_name_the_server_not_a_provider_for_custom_urls() -> None:
    local = create_backend("openai/m", base_url="http://127.0.0.1:1/v1", api_key=FAKE_KEY)
    hosted = create_backend("openai/m", api_key=FAKE_KEY)
    assert "OpenAI-compatible server" in describe_backend(local)
    assert "via OpenAI at https://api.openai.com/v1" in describe_backend(hosted)
    for b in (local, hosted):
        asyncio.run(b.aclose())

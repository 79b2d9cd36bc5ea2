"""What the two SDK backends (OpenAI-compatible, Anthropic) share, over real HTTP.

No SDK is mocked: the clients talk to ``persona_collapse.loopback.LoopbackServer``
on 127.0.0.1. Happy paths, faults mapped to decisions, ``check()``, the
first-contact rule and keeping the API key out of every message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from persona_collapse.backends import (
    Backend,
    BackendError,
    ChatResult,
    Fatal,
    ModelSpec,
    Retry,
    create_backend,
)
from persona_collapse.backends.decisions import FIRST_CONTACT_TRIES
from persona_collapse.backends.sdk import OpenAIBackend
from persona_collapse.instruments import load_instrument
from persona_collapse.loopback import FaultConfig, LoopbackServer

from .backend_helpers import (
    BOTH,
    DIGITS,
    FAKE_KEY,
    REQ,
    anthropic_backend,
    assert_no_key,
    assert_one_line,
    clear_provider_keys,
    failure,
    free_port,
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


# -- happy paths over real HTTP ----------------------------------------------------------------


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


@BOTH
def test_check_passes_on_a_working_server(make: Callable[..., Backend]) -> None:
    with serve() as server:
        using(make(server), lambda b: b.check(timeout_s=5))
        assert server.stats.requests == 1


# -- faults -> decisions over real HTTP --------------------------------------------------------


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
@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(malformed_rate=1.0),
        FaultConfig(html_rate=1.0),
        FaultConfig(error_body_rate=1.0),
    ],
    ids=["cut-json", "html-page", "error-object"],
)
def test_a_broken_200_body_is_a_transport_fault(
    make: Callable[..., Backend], mfq: Any, faults: FaultConfig
) -> None:
    """Cut-off JSON, an HTML gateway page or an error object with status 200: Retry, no answer."""
    with serve(faults) as server:
        exc = failure(make(server), persona_request(mfq))
        assert sum(server.stats.faults.values()) >= 1
    assert isinstance(exc.decision, Retry), exc.decision
    assert exc.decision.kind == "malformed"
    assert FAKE_KEY not in exc.decision.detail


@BOTH
def test_a_key_echoed_in_the_answer_is_redacted(make: Callable[..., Backend], mfq: Any) -> None:
    """The server puts the request's key into a long answer: the text holds *** instead."""
    with serve(FaultConfig(echo_key=True)) as server:
        result = using(make(server), lambda b: b.complete(persona_request(mfq, max_tokens=64)))
    assert "***" in result.text
    assert_no_key(result.text)


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
            using(make(server), lambda b: b.check(timeout_s=5))
        except BackendError as e:
            check_exc = e
    assert isinstance(exc.decision, Fatal)
    assert "API key" in exc.decision.message
    # a key handed to a loopback server was named by the user: the hint says so
    assert "--api-key-env" in exc.decision.message
    assert check_exc is not None and isinstance(check_exc.decision, Fatal)
    assert_no_key(exc, exc.decision, repr(exc.decision), check_exc, repr(backend))
    assert_no_key(backend.describe(), caplog.text)
    assert exc.__cause__ is None  # the SDK exception (holding the request) is not chained


def test_unreachable_port_is_fatal_via_check() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = create_backend("openai/sim-base", base_url=url, api_key=FAKE_KEY)
    with pytest.raises(BackendError) as info:
        using(backend, lambda b: b.check(timeout_s=5))
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
        using(make(server, "gpt-nope"), lambda b: b.check(timeout_s=5))
    assert isinstance(info.value.decision, Fatal)
    assert "gpt-nope" in str(info.value)


def test_check_tolerates_rate_limits_and_gives_up_on_hangs() -> None:
    with serve(FaultConfig(rate_limit_rate=1.0, retry_after_s=30)) as server:
        using(openai_backend(server), lambda b: b.check(timeout_s=5))
    with serve(FaultConfig(timeout_rate=1.0, hang_s=20)) as server:
        backend = openai_backend(server)
        with pytest.raises(BackendError) as info:
            using(backend, lambda b: b.check(timeout_s=0.3, attempts=2))  # type: ignore[call-arg]
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
                texts += [repr(backend), backend.describe()]
                exc = failure(backend, persona_request(mfq, timeout_s=0.5))
                texts += [str(exc), repr(exc), str(exc.decision), repr(exc.decision)]
    texts.append(caplog.text)
    assert_no_key(*texts)


# -- first contact, offline --------------------------------------------------------------------


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
    backend.decision_for(openai.InternalServerError("x", response=http_response(500), body=None))
    later = [backend.decision_for(openai.APIConnectionError(request=REQ)) for _ in range(5)]
    assert all(isinstance(d, Retry) for d in later)
    asyncio.run(backend.aclose())

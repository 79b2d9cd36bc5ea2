"""What the backend tests share: a fake key, a loopback server, running a backend, assertions.

No SDK is mocked: the OpenAI and Anthropic clients talk to
``persona_collapse.loopback.LoopbackServer`` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx2
import pytest

from persona_collapse.backends import PRICES_ENV, Backend, BackendError, ChatRequest, create_backend
from persona_collapse.backends.decisions import Where
from persona_collapse.loopback import FaultConfig, LoopbackServer
from persona_collapse.protocol import slot_messages

FAKE_KEY = "sk-test-SECRET-1234567890"
PERSONA = "A retired schoolteacher who volunteers at the local food bank every weekend."
DIGITS = set("012345")
T = TypeVar("T")

#: Environment variables a test must never read from the person running it.
PROVIDER_KEY_ENVS = (
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
)


def clear_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see real keys of the person running them."""
    for env in PROVIDER_KEY_ENVS:
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


# -- SDK exceptions built offline --------------------------------------------------------------

WHERE = Where(
    model="openai/gpt-4o",
    base_url="https://api.openai.com/v1",
    key_env="OPENAI_API_KEY",
    provider="OpenAI",
)
REQ = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")


def http_response(status: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, headers=headers or {}, request=REQ)

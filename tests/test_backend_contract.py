"""The backend contract: every backend subclasses :class:`Backend`, whose defaults hold."""

from __future__ import annotations

import asyncio
import importlib
import inspect

import pytest

from persona_collapse.backends import (
    DEFAULT_CONCURRENCY,
    FAMILIES,
    Backend,
    BatchAPI,
    ChatRequest,
    ChatResult,
    ModelSpec,
    create_backend,
)

from .backend_helpers import FAKE_KEY, clear_provider_keys


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_provider_keys(monkeypatch)


class Echo(Backend):
    """The smallest backend: only ``complete``; everything else is the base class's default."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.checks = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        return ChatResult(text=request.messages[-1]["content"])


class Counted(Echo):
    async def check(self, *, timeout_s: float = 30.0) -> None:
        self.checks += 1
        self.timeout_s = timeout_s


_BUILTIN = {
    "openai": "persona_collapse.backends._openai:OpenAIBackend",
    "anthropic": "persona_collapse.backends._anthropic:AnthropicBackend",
    "sim": "persona_collapse.backends._sim:SimBackend",
}


def _class_of(family: str) -> type:
    """The backend class a family's models get (skipped when an optional extra is missing)."""
    entry = FAMILIES[family]
    target = entry.target or _BUILTIN[entry.kind]
    for required in entry.requires:
        pytest.importorskip(required)
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    assert isinstance(cls, type)
    return cls


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_registered_backend_subclasses_backend(family: str) -> None:
    cls = _class_of(family)
    assert issubclass(cls, Backend)
    assert not inspect.isabstract(cls), f"{cls.__name__} leaves an abstract method open"


def test_the_base_class_cannot_be_made_without_complete() -> None:
    with pytest.raises(TypeError):
        Backend(ModelSpec("x", "y"))  # type: ignore[abstract]


def test_base_class_defaults() -> None:
    backend = Echo(ModelSpec("echo", "m"))
    assert backend.spec == ModelSpec("echo", "m")
    assert backend.supports_logprobs is False
    assert backend.preferred_concurrency == DEFAULT_CONCURRENCY == 8
    assert backend.simulated is False
    assert backend.secrets == ()
    assert backend.describe() == backend.spec.full == "echo/m"

    async def body() -> ChatResult:
        assert await backend.check() is None  # nothing to check
        assert await backend.check(timeout_s=0.001) is None
        result = await backend.complete(ChatRequest([{"role": "user", "content": "hi"}], 0.1, 1))
        assert await backend.aclose() is None  # nothing to release
        return result

    assert asyncio.run(body()).text == "hi"


def test_a_simulated_backend_says_so_by_default() -> None:
    class Simulated(Echo):
        @property
        def simulated(self) -> bool:
            return True

    assert Simulated(ModelSpec("echo", "m")).describe() == "echo/m [SIMULATED]"


def test_what_the_builtin_backends_override() -> None:
    sim = create_backend("sim/base")
    assert sim.simulated and sim.supports_logprobs
    assert sim.preferred_concurrency == DEFAULT_CONCURRENCY
    assert "SIMULATED" in sim.describe() and sim.secrets == ()

    openai_b = create_backend("openai/m", base_url="http://127.0.0.1:1/v1", api_key=FAKE_KEY)
    anthropic_b = create_backend("anthropic/m", base_url="http://127.0.0.1:1", api_key=FAKE_KEY)
    assert openai_b.supports_logprobs and not anthropic_b.supports_logprobs
    for backend in (openai_b, anthropic_b):
        assert isinstance(backend, Backend)
        assert not backend.simulated
        assert backend.secrets == (FAKE_KEY,)
        assert backend.preferred_concurrency == DEFAULT_CONCURRENCY
        assert backend.describe() != backend.spec.full and FAKE_KEY not in backend.describe()
        asyncio.run(backend.aclose())


def test_vllm_prefers_one_full_batch() -> None:
    """``vllm/`` overrides ``preferred_concurrency`` (checked without starting an engine;
    ``hf/`` is checked on a real tiny model in test_hf.py)."""
    vllm_backend = importlib.import_module("persona_collapse.backends._vllm").VLLMBackend
    assert "preferred_concurrency" in vars(vllm_backend)


def test_batch_is_an_optional_capability() -> None:
    """Only openai/ and anthropic/ offer a batch API; every other backend says None."""
    assert Echo(ModelSpec("echo", "m")).batch is None
    assert create_backend("sim/base").batch is None
    local = "http://127.0.0.1:1"
    offering = {
        "openai/m": create_backend("openai/m", base_url=local + "/v1", api_key=FAKE_KEY),
        "anthropic/m": create_backend("anthropic/m", base_url=local, api_key=FAKE_KEY),
    }
    compatible = create_backend("llamacpp/m", base_url=local + "/v1", api_key=FAKE_KEY)
    assert compatible.batch is None  # an OpenAI-compatible server without the Batch API
    for backend in offering.values():
        api = backend.batch
        assert isinstance(api, BatchAPI) and api is backend.batch  # made once
        assert api.limits.max_requests > 0 and api.limits.max_bytes > 0
    for backend in (*offering.values(), compatible):
        asyncio.run(backend.aclose())

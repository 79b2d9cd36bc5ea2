"""The simulated backend (``sim/``): SIMULATED, deterministic, with logprobs."""

from __future__ import annotations

from typing import Any

import pytest

from persona_collapse.backends import (
    Backend,
    ChatRequest,
    Fatal,
    create_backend,
)
from persona_collapse.errors import ConfigError
from persona_collapse.instruments import load_instrument

from .backend_helpers import (
    DIGITS,
    clear_provider_keys,
    failure,
    persona_request,
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


def test_sim_backend_is_simulated_and_deterministic(mfq: Any) -> None:
    backend = create_backend("sim/insecure", seed=3)
    assert isinstance(backend, Backend)
    assert "SIMULATED" in backend.describe()
    assert "SIMULATED" in repr(backend)
    assert backend.spec.extra.get("simulated") == "true"
    requests = [persona_request(mfq, i, temperature=1.0) for i in range(1, 31)] * 3

    async def body(b: Backend) -> list[str]:
        await b.check()
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

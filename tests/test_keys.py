"""Keys go only where they belong.

A provider's default variable (``OPENAI_API_KEY``, ...) is sent only to that
provider's official host; any other URL gets a key only when ``--api-key-env``
names one. The loopback server records the headers it receives, so each test
sees what would have left the machine. The plain-http warning is a decision
tested offline: no traffic ever goes to a non-loopback address here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from persona_collapse.backends import (
    PLACEHOLDER_KEY,
    choose_key,
    create_backend,
    key_for,
    official_key_hosts,
    plain_http_warning,
)
from persona_collapse.errors import ConfigError
from persona_collapse.finetune.training import OpenAIFineTuner
from persona_collapse.instruments import load_instrument
from persona_collapse.loopback import LoopbackServer, ScriptedRespondent
from persona_collapse.simulate import SimulatedRespondent

from .backend_helpers import clear_provider_keys, persona_request, using
from .helpers import run_cli
from .test_verify import JUDGE, MIXED, PROMPTS

DEFAULT_KEY = "sk-default-SECRET-0123456789"
NAMED_KEY = "sk-named-SECRET-9876543210"
PERSONAS = ["A retired schoolteacher.", "A night-shift nurse.", "A jazz musician."]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_provider_keys(monkeypatch)
    for env in official_key_hosts().values():
        monkeypatch.setenv(env, DEFAULT_KEY)
    monkeypatch.setenv("OLLAMA_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("LLAMACPP_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("VLLM_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("MYKEY", NAMED_KEY)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(SimulatedRespondent("base", seed=1), keep_requests=True) as srv:
        yield srv


def _received(server: LoopbackServer) -> str:
    """Every Authorization / x-api-key header value the server received, joined."""
    values = [
        value
        for r in server.stats.recorded
        for name, value in r.headers.items()
        if name.lower() in ("authorization", "x-api-key")
    ]
    assert values, "the server recorded no request"
    return "\n".join(values)


# -- the rule, offline -----------------------------------------------------------------


@pytest.mark.parametrize(
    "model, host, env",
    [
        ("openai/m", "api.openai.com", "OPENAI_API_KEY"),
        ("anthropic/m", "api.anthropic.com", "ANTHROPIC_API_KEY"),
        ("openrouter/m", "openrouter.ai", "OPENROUTER_API_KEY"),
        ("together/m", "api.together.xyz", "TOGETHER_API_KEY"),
        ("deepseek/m", "api.deepseek.com", "DEEPSEEK_API_KEY"),
        ("xai/m", "api.x.ai", "XAI_API_KEY"),
    ],
)
def test_each_default_key_goes_only_to_its_own_host(
    monkeypatch: pytest.MonkeyPatch, model: str, host: str, env: str
) -> None:
    family = model.split("/")[0]
    monkeypatch.setenv(env, f"{env}-value-123456")
    assert official_key_hosts()[host] == env
    official = key_for(family, f"https://{host}/v1")
    assert (official.key, official.env) == (f"{env}-value-123456", env)
    # the same family at any other URL: no key unless one is named
    for url in ("http://127.0.0.1:8000/v1", "https://proxy.example.com/v1"):
        assert key_for(family, url).key is None
        assert key_for(family, url, NAMED_KEY).key == NAMED_KEY


def test_local_families_and_servers_get_no_default_key() -> None:
    for model, url in (
        ("ollama/llama3", None),
        ("llamacpp/any", None),
        ("vllm/Qwen/Qwen2.5-0.5B-Instruct", "http://localhost:8000/v1"),
    ):
        backend = create_backend(model, base_url=url)
        assert backend._api_key == PLACEHOLDER_KEY  # type: ignore[attr-defined]
        asyncio.run(backend.aclose())
    named = create_backend("ollama/llama3", api_key=NAMED_KEY)
    assert named._api_key == NAMED_KEY  # type: ignore[attr-defined]
    asyncio.run(named.aclose())


def test_a_custom_url_never_gets_the_default_key() -> None:
    backend = create_backend("openai/m", base_url="http://127.0.0.1:8000/v1")
    assert backend._api_key == PLACEHOLDER_KEY  # type: ignore[attr-defined]
    asyncio.run(backend.aclose())
    anthropic = create_backend("anthropic/m", base_url="http://127.0.0.1:8000")
    assert anthropic._api_key == PLACEHOLDER_KEY  # type: ignore[attr-defined]
    asyncio.run(anthropic.aclose())


def test_a_hosted_provider_without_its_key_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        key_for("openai", "https://api.openai.com/v1")
    # a provider's host that is not the family's official one needs a named key
    with pytest.raises(ConfigError, match="--api-key-env"):
        choose_key("https://eu.api.openai.com/v1", named_key=None, official={}, who="openai")


@pytest.mark.parametrize(
    "url, warned",
    [
        ("http://10.0.0.5:8000/v1", True),
        ("http://192.168.1.20/v1", True),
        ("http://gpu-box.example.com/v1", True),
        ("https://10.0.0.5:8000/v1", False),
        ("https://api.openai.com/v1", False),
        ("http://127.0.0.1:8000/v1", False),
        ("http://127.5.6.7:8000/v1", False),
        ("http://localhost:8000/v1", False),
        ("http://[::1]:8000/v1", False),
    ],
)
def test_plain_http_warning_decision(url: str, warned: bool) -> None:
    warning = plain_http_warning(url)
    assert (warning is not None) == warned
    if warning is not None:
        assert "\n" not in warning and "http" in warning


def test_a_key_over_plain_http_is_warned_once_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # creating a backend sends nothing: no traffic to the non-loopback address
    backend = create_backend("openai/m", base_url="http://10.0.0.5:8000/v1", api_key=NAMED_KEY)
    asyncio.run(backend.aclose())
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "plain http" in err and "10.0.0.5" in err
    assert NAMED_KEY not in err
    # no key, nothing to warn about; loopback, nothing to warn about
    for url, key in (("http://10.0.0.5:8000/v1", None), ("http://127.0.0.1:9/v1", NAMED_KEY)):
        b = create_backend("openai/m", base_url=url, api_key=key)
        asyncio.run(b.aclose())
    assert capsys.readouterr().err == ""


# -- what a server receives ------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], server: LoopbackServer, tmp: Path, *extra: str):
    personas = tmp / "personas.json"
    personas.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return run_cli(
        capsys,
        "run",
        "openai/sim-base",
        "--base-url",
        server.base_url,
        "--store",
        str(tmp / "k.db"),
        "--personas",
        str(personas),
        "--n-personas",
        "2",
        "--reps",
        "1",
        "--quiet",
        *extra,
    )


def test_run_does_not_send_the_default_key_to_a_custom_base_url(
    capsys: pytest.CaptureFixture[str], server: LoopbackServer, tmp_path: Path
) -> None:
    result = _run(capsys, server, tmp_path)
    assert result.status == 0, result.err
    received = _received(server)
    assert DEFAULT_KEY not in received
    assert PLACEHOLDER_KEY in received


def test_run_sends_the_key_named_by_api_key_env(
    capsys: pytest.CaptureFixture[str], server: LoopbackServer, tmp_path: Path
) -> None:
    result = _run(capsys, server, tmp_path, "--api-key-env", "MYKEY")
    assert result.status == 0, result.err
    received = _received(server)
    assert NAMED_KEY in received and DEFAULT_KEY not in received
    assert "warning" not in result.err  # loopback over http is fine


def test_anthropic_default_key_stays_home(server: LoopbackServer) -> None:
    backend = create_backend("anthropic/sim-base", base_url=server.anthropic_base_url)
    result = using(backend, lambda b: b.complete(persona_request(load_instrument("mfq30"))))
    assert result.text
    assert DEFAULT_KEY not in _received(server)


@pytest.fixture
def verify_server() -> Iterator[LoopbackServer]:
    respondents = {
        "mixed": ScriptedRespondent({p: MIXED for p in PROMPTS}),
        "judge": ScriptedRespondent(judge=JUDGE),
    }
    with LoopbackServer(respondents, keep_requests=True) as srv:  # type: ignore[arg-type]
        yield srv


@pytest.mark.parametrize("named", [(), ("--api-key-env", "MYKEY")])
def test_verify_model_and_judge_follow_the_rule(
    capsys: pytest.CaptureFixture[str],
    verify_server: LoopbackServer,
    tmp_path: Path,
    named: tuple[str, ...],
) -> None:
    result = run_cli(
        capsys,
        "verify",
        "openai/mixed",
        "--judge",
        "openai/judge",
        "--base-url",
        verify_server.base_url,
        "--judge-base-url",
        verify_server.base_url,
        "--store",
        str(tmp_path / "v.db"),
        "--samples",
        "1",
        "--quiet",
        *named,
    )
    assert result.status == 0, result.err
    model_keys, judge_keys = [], []
    for r in verify_server.stats.recorded:
        body = r.body if isinstance(r.body, dict) else {}
        auth = r.headers.get("authorization", "")
        (judge_keys if body.get("model") == "judge" else model_keys).append(auth)
    assert model_keys and judge_keys
    assert not any(DEFAULT_KEY in k for k in model_keys + judge_keys)
    if named:  # the model's key is named; the judge's is not
        assert all(NAMED_KEY in k for k in model_keys if k)
        assert not any(NAMED_KEY in k for k in judge_keys)


def test_finetune_openai_sends_no_default_key_to_a_custom_base_url(
    server: LoopbackServer,
) -> None:
    OpenAIFineTuner(base_url=server.base_url).client.models.list()
    assert DEFAULT_KEY not in _received(server)
    server.stats.recorded.clear()
    OpenAIFineTuner(base_url=server.base_url, key_env="MYKEY").client.models.list()
    assert NAMED_KEY in _received(server)


def test_finetune_openai_at_openai_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    tuner = OpenAIFineTuner()  # builds a client only; nothing is sent
    assert tuner.client.api_key == DEFAULT_KEY
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        OpenAIFineTuner()

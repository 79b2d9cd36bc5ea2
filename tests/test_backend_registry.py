"""Model names, keys, the family registry, shared decisions and redaction, and prices."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from persona_collapse.backends import (
    DEFAULT_PRICES,
    PLACEHOLDER_KEY,
    PRICES_ENV,
    Fatal,
    ModelSpec,
    Price,
    create_backend,
    known_families,
    parse_model,
    price_for,
    redact,
)
from persona_collapse.backends.decisions import decision_for_status
from persona_collapse.backends.sdk import OpenAIBackend
from persona_collapse.errors import ConfigError
from persona_collapse.instruments import load_instrument

from .backend_helpers import (
    FAKE_KEY,
    WHERE,
    assert_no_key,
    assert_one_line,
    clear_provider_keys,
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


# -- decisions and redaction shared by every backend -------------------------------------------


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
    assert_no_key(repr(backend), backend.describe(), backend.spec)
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


# -- prices ------------------------------------------------------------------------------------


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

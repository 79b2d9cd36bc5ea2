"""Model names (``family/model-name``) and creating the backend for one.

Every SDK is imported only when its family is used: ``openai`` for the
OpenAI-compatible families, ``anthropic`` for ``anthropic/``, and the optional
``hf``, ``vllm`` and ``tinker`` backends, whose missing extras are reported as
one :class:`~persona_collapse.errors.ConfigError` line naming the install
command.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from typing import Any, Literal, TextIO, cast

from ..errors import ConfigError
from ._backend import Backend
from ._decisions import check_base_url, host_of, is_provider_host
from ._keys import KeyChoice, choose_key
from ._types import ModelSpec

#: Sent as the key to servers that need none (local vLLM, Ollama, llama.cpp).
PLACEHOLDER_KEY = "not-needed"

Kind = Literal["openai", "anthropic", "sim", "optional"]


@dataclass(frozen=True)
class Family:
    """One model family: how its backend is made and where its key comes from.

    ``target``: ``module:Class`` of an optional backend; ``requires``: modules
    its extra installs; ``server_ok``: with ``--base-url`` the family is served
    by an OpenAI-compatible server instead (vLLM's ``vllm serve``).
    """

    name: str
    kind: Kind
    summary: str
    key_env: str | None = None
    base_url: str | None = None
    target: str | None = None
    extra: str | None = None
    requires: tuple[str, ...] = ()
    server_ok: bool = False
    #: Further official hosts of the provider, besides ``base_url``'s.
    hosts: tuple[str, ...] = ()
    #: Whether the family's API returns next-token logprobs (``--method logprobs``).
    logprobs: bool = True
    #: Whether the provider has a batch API the backend drives (``run --batch``).
    batch: bool = False


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "openai",
            "openai",
            "OpenAI chat completions (or any OpenAI-compatible server with --base-url)",
            "OPENAI_API_KEY",
            "https://api.openai.com/v1",
            batch=True,
        ),
        Family(
            "openrouter",
            "openai",
            "OpenRouter",
            "OPENROUTER_API_KEY",
            "https://openrouter.ai/api/v1",
        ),
        Family(
            "together",
            "openai",
            "Together AI",
            "TOGETHER_API_KEY",
            "https://api.together.xyz/v1",
            hosts=("api.together.ai",),
        ),
        Family("deepseek", "openai", "DeepSeek", "DEEPSEEK_API_KEY", "https://api.deepseek.com/v1"),
        Family("xai", "openai", "xAI", "XAI_API_KEY", "https://api.x.ai/v1"),
        Family(
            "ollama",
            "openai",
            "Ollama server (local)",
            "OLLAMA_API_KEY",
            "http://localhost:11434/v1",
        ),
        Family(
            "llamacpp",
            "openai",
            "llama.cpp server (local)",
            "LLAMACPP_API_KEY",
            "http://localhost:8080/v1",
        ),
        Family(
            "anthropic",
            "anthropic",
            "Anthropic Messages API (no logprobs)",
            "ANTHROPIC_API_KEY",
            "https://api.anthropic.com",
            logprobs=False,
            batch=True,
        ),
        Family("sim", "sim", "SIMULATED respondent (tests and demos; not a language model)"),
        Family(
            "hf",
            "optional",
            "local HuggingFace transformers",
            target="persona_collapse.backends._hf:HFBackend",
            extra="hf",
            requires=("torch", "transformers"),
        ),
        Family(
            "vllm",
            "optional",
            "vLLM offline (or a vLLM server with --base-url)",
            key_env="VLLM_API_KEY",
            target="persona_collapse.backends._vllm:VLLMBackend",
            extra="vllm",
            requires=("vllm",),
            server_ok=True,
        ),
        Family(
            "tinker",
            "optional",
            "Tinker sampling clients",
            key_env="TINKER_API_KEY",
            target="persona_collapse.backends._tinker:TinkerBackend",
            extra="tinker",
            requires=("tinker",),
        ),
    )
}


def known_families() -> list[str]:
    """The family names a model can start with."""
    return list(FAMILIES)


def _family_list() -> str:
    return ", ".join(FAMILIES)


def _did_you_mean(family: str) -> str:
    """``"did you mean 'openai'? "`` for a near miss (``opnai``), else ``""``."""
    close = difflib.get_close_matches(family, FAMILIES, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def parse_model(model: str) -> ModelSpec:
    """``"openai/gpt-4o"`` -> ``ModelSpec("openai", "gpt-4o")``.

    Everything after the first ``/`` is the provider's model name
    (``openrouter/qwen/qwen3-235b-a22b-2507`` has family ``openrouter``).
    Raises :class:`ConfigError` for a name without a family, an unknown
    family or an empty model name.
    """
    text = str(model).strip()
    family, sep, name = text.partition("/")
    family = family.strip().lower()
    name = name.strip()
    if not sep or not family:
        raise ConfigError(
            f"model {text!r} has no family: name it FAMILY/MODEL, e.g. openai/{text or 'gpt-4o'} "
            f"(known families: {_family_list()})"
        )
    if family not in FAMILIES:
        raise ConfigError(
            f"unknown model family {family!r} in {text!r}; {_did_you_mean(family)}"
            f"known: {_family_list()}"
        )
    if not name:
        raise ConfigError(f"model {text!r} has no model name after {family}/ (e.g. {family}/NAME)")
    return ModelSpec(family, name)


def _clean_base_url(base_url: str) -> str:
    try:
        return check_base_url(base_url)
    except ValueError as exc:
        shown = "(hidden: it holds credentials)" if "@" in str(base_url) else repr(base_url)
        raise ConfigError(f"bad base URL {shown}: {exc}; e.g. http://127.0.0.1:8000/v1") from None


def official_key_hosts() -> dict[str, str]:
    """Official host -> the environment variable whose key may go there.

    One entry per hosted provider (``api.openai.com -> OPENAI_API_KEY``, ...);
    local families (``ollama``, ``llamacpp``) and servers (``vllm``) have none:
    they get a key only from ``--api-key-env``.
    """
    hosts: dict[str, str] = {}
    for family in FAMILIES.values():
        if family.base_url and family.key_env and is_provider_host(family.base_url):
            for host in (host_of(family.base_url), *family.hosts):
                hosts[host] = family.key_env
    return hosts


def key_for(
    family: str, url: str, api_key: str | None = None, *, warn: TextIO | None = None
) -> KeyChoice:
    """The key requests of model family ``family`` to ``url`` carry (see :func:`choose_key`).

    ``api_key`` is a key the user named (``--api-key-env``). The plain-http
    warning, if any, is written as one line to ``warn`` (default: stderr).
    Raises :class:`ConfigError` when a hosted provider's key is missing.
    """
    choice = choose_key(url, named_key=api_key, official=official_key_hosts(), who=family)
    if choice.warning is not None:
        print(choice.warning, file=warn if warn is not None else sys.stderr, flush=True)
    return choice


def _module_missing(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is None
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def _missing_extra(family: Family, what: str) -> ConfigError:
    return ConfigError(
        f"{family.name}/... needs the {family.extra} extra ({what} is not installed): "
        f"pip install 'persona-collapse[{family.extra}]'"
    )


def _load_optional(family: Family) -> Any:
    """The backend class of an optional family, or a ConfigError naming the extra."""
    assert family.target is not None
    for required in family.requires:
        if _module_missing(required):
            raise _missing_extra(family, required)
    module_name, _, attr = family.target.partition(":")
    try:
        loaded = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise ConfigError(
                f"{family.name}/ models are not supported by this version of persona-collapse "
                f"(no {module_name}); use another family: {_family_list()}"
            ) from None
        raise _missing_extra(family, exc.name or str(exc)) from None
    except ImportError as exc:
        raise _missing_extra(family, str(exc).split("\n", 1)[0]) from None
    try:
        return getattr(loaded, attr)
    except AttributeError:
        raise ConfigError(
            f"{family.name}/ models are not supported by this version of persona-collapse "
            f"({module_name} has no {attr})"
        ) from None


def _construct(cls: Any, spec: ModelSpec, options: dict[str, Any]) -> Any:
    """``cls(spec, **options)``, passing only the options its signature accepts."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return cls(spec, **options)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cls(spec, **options)
    return cls(spec, **{k: v for k, v in options.items() if k in params})


def create_backend(
    model: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    api_key_env: str | None = None,
    seed: int = 0,
    timeout_s: float = 60.0,
) -> Backend:
    """The backend for ``model`` (``family/model-name``).

    Args:
        model: e.g. ``openai/gpt-4o-2024-08-06``, ``anthropic/claude-haiku-4-5``,
            ``sim/insecure``, ``hf/Qwen/Qwen2.5-0.5B-Instruct``.
        base_url: API root of an OpenAI-compatible server (or Anthropic-compatible
            for ``anthropic/``). Without it each family uses its provider's URL.
        api_key: A key the user named (``--api-key-env``); it goes to any URL.
            Without it the family's variable is read only for its provider's
            official host; other URLs get a placeholder, never a real key.
        api_key_env: The variable ``api_key`` came from, named in messages.
        seed: Seed of simulated and local backends.
        timeout_s: Default per-request timeout of HTTP backends.

    Raises:
        ConfigError: unknown family, bad base URL, missing API key for a
            hosted provider, or a missing optional extra.
    """
    spec = parse_model(model)
    family = FAMILIES[spec.family]
    url = _clean_base_url(base_url) if base_url is not None else None

    if family.kind == "sim":
        if url is not None:
            raise ConfigError(f"{spec.full} is simulated in-process: --base-url does not apply")
        from ._sim import SimBackend

        return SimBackend(spec, seed=seed)

    if family.kind == "optional" and not (family.server_ok and url is not None):
        if url is not None:
            raise ConfigError(f"{spec.full} runs locally: --base-url does not apply")
        cls = _load_optional(family)
        options: dict[str, Any] = {"seed": seed}
        if api_key is not None:
            options["api_key"] = api_key
        return cast(Backend, _construct(cls, spec, options))

    effective = url or family.base_url
    assert effective is not None
    choice = key_for(family.name, effective, api_key)
    key = choice.key or PLACEHOLDER_KEY
    env = choice.env or (api_key_env if choice.key is not None else None)
    spec = ModelSpec(spec.family, spec.name, {**spec.extra, "base_url": effective})

    if family.kind == "anthropic":
        from ._anthropic import AnthropicBackend

        if effective.endswith("/v1"):  # the SDK adds /v1/messages itself
            effective = effective[: -len("/v1")]
            spec = ModelSpec(spec.family, spec.name, {**spec.extra, "base_url": effective})

        return AnthropicBackend(
            spec, base_url=effective, api_key=key, key_env=env, timeout_s=timeout_s
        )

    from ._openai import OpenAIBackend

    return OpenAIBackend(spec, base_url=effective, api_key=key, key_env=env, timeout_s=timeout_s)

"""What a run costs: USD per million input and output tokens, per model.

Prices are looked up, first hit wins, in: a price file given as an argument,
the file named by ``PERSONA_COLLAPSE_PRICES`` (the user's own prices), the
``genai-prices`` package (a community-maintained table of provider list
prices, updated with each release; asked only for hosted families: openai,
anthropic, openrouter, together, deepseek, xai, and read from its bundled
snapshot, never the network), then the built-in table below (list prices when
written). :attr:`Price.source` says which one answered. A price file is JSON
or TOML::

    # prices.toml                          // prices.json
    ["openai/gpt-4o"]                      {"openai/gpt-4o": {"input": 2.5, "output": 10},
    input = 2.5                             "my-model": [0.2, 0.8]}
    output = 10.0

Keys are ``family/name`` or a bare model name, and may hold ``*`` wildcards
(``sim/*``). A dated snapshot (``gpt-4o-mini-2024-07-18``,
``claude-haiku-4-5-20251001``) falls back to its undated name.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from ..errors import ConfigError

PRICES_ENV = "PERSONA_COLLAPSE_PRICES"


@dataclass(frozen=True)
class Price:
    """USD per million input (prompt) and output (completion) tokens.

    ``source`` says where the price came from (``built-in table``,
    ``genai-prices 0.2.3``, ``price file PATH``); it takes no part in equality.
    """

    input_per_mtok: float
    output_per_mtok: float
    source: str = field(default="", compare=False)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for that many prompt and completion tokens."""
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1e6


BUILTIN_SOURCE = "built-in table"
""":attr:`Price.source` of a price from :data:`DEFAULT_PRICES`."""

_BUILTIN: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-2024-08-06": Price(2.50, 10.00),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "claude-sonnet-4-5": Price(3.00, 15.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    # the paper's OpenRouter families (OpenRouter list prices, Dec 2026)
    "qwen/qwen3-235b-a22b": Price(0.13, 0.60),
    "qwen/qwen3-235b-a22b-2507": Price(0.09, 0.55),
    "deepseek/deepseek-chat-v3.1": Price(0.27, 1.00),
    "sim/*": Price(0.0, 0.0),
}

DEFAULT_PRICES: dict[str, Price] = {
    key: Price(p.input_per_mtok, p.output_per_mtok, BUILTIN_SOURCE) for key, p in _BUILTIN.items()
}
"""The built-in table: the fallback when neither a price file nor ``genai-prices`` knows."""


GENAI_PRICES_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "openrouter": "openrouter",
    "together": "together",
    "deepseek": "deepseek",
    "xai": "x-ai",
}
"""Model family -> ``genai-prices`` provider id; other families (local, simulated) are not asked."""

_SNAPSHOT = re.compile(r"^(?P<base>.+?)-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
_cache: dict[tuple[str, int], dict[str, Price]] = {}


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number (USD per million tokens), got {value!r}")
    out = float(value)
    if not math.isfinite(out) or out < 0:
        raise ConfigError(f"{where} must be a finite number >= 0, got {value!r}")
    return out


def _entry(key: str, value: object, source: str) -> Price:
    where = f"price of {key!r} in {source}"
    origin = f"price file {source}"
    if isinstance(value, list | tuple) and len(value) == 2:
        return Price(
            _number(value[0], where + " [input]"), _number(value[1], where + " [output]"), origin
        )
    if isinstance(value, Mapping):
        names = {"input", "output", "input_per_mtok", "output_per_mtok"}
        unknown = set(value) - names
        if unknown:
            raise ConfigError(f"{where} has unknown field(s) {sorted(unknown)}: use input, output")
        inp = value.get("input", value.get("input_per_mtok"))
        out = value.get("output", value.get("output_per_mtok"))
        if inp is None or out is None:
            raise ConfigError(f"{where} needs both input and output (USD per million tokens)")
        return Price(_number(inp, where + " input"), _number(out, where + " output"), origin)
    raise ConfigError(f"{where} must be {{input = X, output = Y}} or [X, Y], got {value!r}")


def parse_prices(data: object, source: str = "prices") -> dict[str, Price]:
    """A price table from decoded JSON/TOML (optionally under a top-level ``prices`` key)."""
    if isinstance(data, Mapping) and isinstance(data.get("prices"), Mapping):
        data = data["prices"]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must map model names to prices")
    return {str(k).strip(): _entry(str(k), v, source) for k, v in data.items()}


def load_prices(path: str | os.PathLike[str]) -> dict[str, Price]:
    """The price table in a ``.json`` or ``.toml`` file (cached until the file changes)."""
    file = Path(path).expanduser()
    try:
        stat = file.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read price file {file}: {exc.strerror or exc}") from None
    cache_key = (str(file.resolve()), stat.st_mtime_ns)
    cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read price file {file}: {exc}") from None
    try:
        if file.suffix.lower() == ".toml":
            data: object = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if file.suffix.lower() == ".toml" else "JSON"
        raise ConfigError(f"price file {file} is not valid {kind}: {exc}") from None
    table = parse_prices(data, str(file))
    _cache[cache_key] = table
    return table


def _candidates(model: str) -> list[str]:
    """Names to look ``model`` up by, most specific first."""
    text = model.strip()
    names = [text]
    _family, sep, rest = text.partition("/")
    bare = rest if sep else text
    if sep:
        names.append(bare)
        _inner, inner_sep, inner_rest = bare.partition("/")
        if inner_sep:  # openrouter/openai/gpt-4o -> gpt-4o
            names.append(inner_rest)
    for name in list(names):
        match = _SNAPSHOT.match(name)
        if match:
            names.append(match.group("base"))
    return list(dict.fromkeys(names))


def _lookup(table: Mapping[str, Price], names: list[str]) -> Price | None:
    for name in names:
        if name in table:
            return table[name]
    for name in names:
        for key, price in table.items():
            if "*" in key and fnmatch.fnmatchcase(name, key):
                return price
    return None


def _per_mtok(value: Decimal, tokens: int) -> float:
    return float(value * 1_000_000 / tokens)


def genai_prices_version() -> str | None:
    """The installed ``genai-prices`` version, or None when it is not installed."""
    try:
        import genai_prices
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return str(genai_prices.__version__)


_PROBE_TOKENS = 1_000
"""Tokens of the probe request priced by ``genai-prices``: a typical prompt of this tool, far
below any long-context price tier."""


def _genai_price(model: str) -> Price | None:
    """The ``genai-prices`` list price of a hosted family's model (its bundled snapshot)."""
    family, sep, name = model.strip().partition("/")
    provider = GENAI_PRICES_PROVIDERS.get(family.lower()) if sep else None
    if provider is None or not name:
        return None
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    usage_in = Usage(input_tokens=_PROBE_TOKENS, output_tokens=0)
    usage_out = Usage(input_tokens=0, output_tokens=_PROBE_TOKENS)
    for ref in dict.fromkeys([name, *(_SNAPSHOT.sub(r"\g<base>", name),)]):
        try:
            inp = calc_price(usage_in, ref, provider_id=provider)
            out = calc_price(usage_out, ref, provider_id=provider)
        except (LookupError, ValueError, TypeError):
            continue
        return Price(
            _per_mtok(inp.input_price, _PROBE_TOKENS),
            _per_mtok(out.output_price, _PROBE_TOKENS),
            f"genai-prices {genai_prices_version()} ({provider}: {inp.model.id})",
        )
    return None


def price_for(model: str, *, prices_file: str | os.PathLike[str] | None = None) -> Price | None:
    """The price of ``model`` (``family/name`` or a bare name), or ``None`` if unknown.

    Looks in ``prices_file``, then the file named by ``PERSONA_COLLAPSE_PRICES``,
    then ``genai-prices`` (hosted families only), then the built-in table.
    :attr:`Price.source` names the one that answered.
    """
    names = _candidates(model)
    tables: list[Mapping[str, Price]] = []
    if prices_file is not None:
        tables.append(load_prices(prices_file))
    env_file = os.environ.get(PRICES_ENV, "").strip()
    if env_file:
        tables.append(load_prices(env_file))
    for table in tables:
        price = _lookup(table, names)
        if price is not None:
            return price
    price = _genai_price(model)
    if price is not None:
        return price
    return _lookup(DEFAULT_PRICES, names)


def unknown_price_hint(model: str) -> str:
    """How to give ``model`` a price: the line every "no known price" message ends with."""
    example = model.strip() or "family/model"
    return (
        f"add its price to a JSON or TOML file and name it in {PRICES_ENV} "
        f'(e.g. {{"{example}": {{"input": 0.5, "output": 1.5}}}}, USD per million tokens)'
    )


BATCH_DISCOUNT: dict[str, float] = {"openai": 0.5, "anthropic": 0.5}
"""Fraction of the list price a provider's batch API charges, by model family.

OpenAI's Batch API and Anthropic's Message Batches both bill input and output
tokens at 50% of the synchronous price (published pricing pages, 2025). A
family absent here has no batch API (``run --batch`` refuses it).
"""


def batch_discount(model: str) -> float | None:
    """The batch price factor of ``model``'s family (0.5 for openai/ and anthropic/), or None."""
    family = model.strip().split("/", 1)[0] if "/" in model else ""
    return BATCH_DISCOUNT.get(family)


def batch_price(price: Price, factor: float) -> Price:
    """``price`` scaled by the batch factor (``source`` notes the batch price)."""
    return Price(
        price.input_per_mtok * factor,
        price.output_per_mtok * factor,
        source=f"{price.source or 'price table'}, batch price x{factor:g}",
    )

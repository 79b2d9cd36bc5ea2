"""What a run costs: USD per million input and output tokens, per model.

The built-in table holds a handful of models (list prices when written; check
your provider's page). Extend or override it with a JSON or TOML file, given
as an argument or in the environment variable ``PERSONA_COLLAPSE_PRICES``::

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
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

PRICES_ENV = "PERSONA_COLLAPSE_PRICES"


@dataclass(frozen=True)
class Price:
    """USD per million input (prompt) and output (completion) tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for that many prompt and completion tokens."""
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1e6


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-2024-08-06": Price(2.50, 10.00),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "claude-sonnet-4-5": Price(3.00, 15.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "sim/*": Price(0.0, 0.0),
}

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
    if isinstance(value, list | tuple) and len(value) == 2:
        return Price(_number(value[0], where + " [input]"), _number(value[1], where + " [output]"))
    if isinstance(value, Mapping):
        names = {"input", "output", "input_per_mtok", "output_per_mtok"}
        unknown = set(value) - names
        if unknown:
            raise ConfigError(f"{where} has unknown field(s) {sorted(unknown)}: use input, output")
        inp = value.get("input", value.get("input_per_mtok"))
        out = value.get("output", value.get("output_per_mtok"))
        if inp is None or out is None:
            raise ConfigError(f"{where} needs both input and output (USD per million tokens)")
        return Price(_number(inp, where + " input"), _number(out, where + " output"))
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


def price_for(model: str, *, prices_file: str | os.PathLike[str] | None = None) -> Price | None:
    """The price of ``model`` (``family/name`` or a bare name), or ``None`` if unknown.

    Looks in ``prices_file``, then the file named by ``PERSONA_COLLAPSE_PRICES``,
    then the built-in table.
    """
    names = _candidates(model)
    tables: list[Mapping[str, Price]] = []
    if prices_file is not None:
        tables.append(load_prices(prices_file))
    env_file = os.environ.get(PRICES_ENV, "").strip()
    if env_file:
        tables.append(load_prices(env_file))
    tables.append(DEFAULT_PRICES)
    for table in tables:
        price = _lookup(table, names)
        if price is not None:
            return price
    return None

"""Option groups several commands declare alike: the bootstrap, the connection to a model, the store.

Each group is declared once, its defaults read from the options dataclass it
fills (:func:`~._defaults.field_default`), so a default changes in one place.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial
from typing import Any

from ..stats import MAX_DRAWS, BootstrapConfig
from ._defaults import field_default
from ._spec import Option

__all__ = [
    "CONNECTION",
    "QUIET",
    "bootstrap_from",
    "bootstrap_options",
    "connection_options",
    "store_options",
]

_SEED_HELP = "bootstrap seed, >= 0 (default %(default)s)"
_DDOF_HELP = "ddof of the across-persona SD in S (default %(default)s, as published)"

_CONNECTION_OPTIONS: dict[str, tuple[str, dict[str, Any], str]] = {
    "base_url": ("base_url", {"metavar": "URL"}, "API root of the {who}'s server"),
    "api_key_env": (
        "api_key_env",
        {"metavar": "VAR"},
        "environment variable holding the {who}'s API key "
        "(default: the family's, e.g. OPENAI_API_KEY)",
    ),
    "concurrency": (
        "concurrency",
        {"type": int},
        "{who} requests in flight (default {concurrency_default})",
    ),
    "timeout": (
        "timeout_s",
        {"type": float, "metavar": "S"},
        "per-request timeout in seconds (default %(default)s)",
    ),
    "seed": ("seed", {"type": int}, "{seed_help} (default %(default)s)"),
}
"""Per connection option (its dest): the options-dataclass field of its default, the
``add_argument`` keywords, and its help (a template)."""

CONNECTION = tuple(_CONNECTION_OPTIONS)
"""The connection options, in the order they are added."""

QUIET = Option("--quiet", action="store_true", help="no progress display")
"""``--quiet``: no progress display while a command runs."""


def _draws(what: str, least: int) -> str:
    return f"{what} bootstrap draws, {least}-{MAX_DRAWS} (default %(default)s)"


def bootstrap_options(*, repetition_draws: bool = True) -> tuple[Option, ...]:
    """``--seed --persona-draws [--repetition-draws] --ddof`` (defaults: BootstrapConfig)."""
    default = partial(field_default, BootstrapConfig)
    options = (
        Option("--seed", type=int, default=default("seed"), help=_SEED_HELP),
        Option(
            "--persona-draws", type=int, default=default("persona_draws"), help=_draws("persona", 2)
        ),
        Option(
            "--repetition-draws",
            type=int,
            default=default("repetition_draws"),
            help=_draws("repetition", 0),
        ),
        Option("--ddof", type=int, choices=(0, 1), default=default("ddof"), help=_DDOF_HELP),
    )
    return options if repetition_draws else options[:2] + options[3:]


def bootstrap_from(
    args: argparse.Namespace, *, repetition_draws: int | None = None
) -> BootstrapConfig:
    """The :class:`BootstrapConfig` of :func:`bootstrap_options`.

    ``repetition_draws`` replaces ``--repetition-draws`` (for a command without it).
    """
    return BootstrapConfig(
        persona_draws=args.persona_draws,
        repetition_draws=args.repetition_draws if repetition_draws is None else repetition_draws,
        seed=args.seed,
        ddof=args.ddof,
    )


def connection_options(
    options: type,
    *,
    include: Sequence[str] = CONNECTION,
    who: str = "model",
    prefix: str = "",
    concurrency_default: str = "%(default)s",
    seed_help: str = "base of the per-request seeds",
) -> tuple[Option, ...]:
    """The options of :data:`CONNECTION` named in ``include``, in ``include``'s order.

    ``--base-url --api-key-env --concurrency --timeout --seed``: defaults are the
    fields ``base_url``, ``api_key_env``, ``concurrency``, ``timeout_s`` and
    ``seed`` of the dataclass ``options``. ``prefix`` (e.g. ``"judge"``) names
    a second endpoint's options (``--judge-base-url``, field and dest
    ``judge_base_url``); ``who`` says whose they are in the help.
    ``concurrency_default`` is the help's default of ``--concurrency`` (for a
    field whose default None means another value); timeouts are in seconds.
    """
    flag = f"--{prefix}-" if prefix else "--"
    field_prefix = f"{prefix}_" if prefix else ""
    words = {"who": who, "concurrency_default": concurrency_default, "seed_help": seed_help}
    return tuple(
        Option(
            flag + name.replace("_", "-"),
            default=field_default(options, field_prefix + _CONNECTION_OPTIONS[name][0]),
            help=_CONNECTION_OPTIONS[name][2].format(**words),
            **_CONNECTION_OPTIONS[name][1],
        )
        for name in include
    )


def store_options(options: type, *, run_id_help: str, max_cost_help: str) -> tuple[Option, ...]:
    """``--store --run-id --max-cost`` (US dollars), defaults from the dataclass ``options``."""
    default = partial(field_default, options)
    return (
        Option(
            "--store",
            default=default("store"),
            metavar="PATH",
            help="SQLite store (default %(default)s)",
        ),
        Option("--run-id", default=default("run_id"), metavar="ID", help=run_id_help),
        Option(
            "--max-cost", type=float, default=default("max_cost"), metavar="USD", help=max_cost_help
        ),
    )

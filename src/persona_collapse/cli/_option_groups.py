"""Option groups several commands declare alike: the bootstrap and the connection to a model.

Each group is declared once, its defaults read from the options dataclass it
fills (:func:`~._defaults.field_default`), so a default changes in one place.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection
from functools import partial

from ..stats import MAX_DRAWS, BootstrapConfig
from ._defaults import field_default

__all__ = ["CONNECTION", "add_bootstrap_options", "add_connection_options", "bootstrap_from"]

CONNECTION = ("base_url", "api_key_env", "concurrency", "timeout", "seed")
"""The connection options, in the order they are added."""


def add_bootstrap_options(p: argparse.ArgumentParser, *, repetition_draws: bool = True) -> None:
    """Add ``--seed --persona-draws [--repetition-draws] --ddof`` (defaults: BootstrapConfig)."""
    default = partial(field_default, BootstrapConfig)
    p.add_argument(
        "--seed",
        type=int,
        default=default("seed"),
        help="bootstrap seed, >= 0 (default %(default)s)",
    )
    p.add_argument(
        "--persona-draws",
        type=int,
        default=default("persona_draws"),
        help=f"persona bootstrap draws, 2-{MAX_DRAWS} (default %(default)s)",
    )
    if repetition_draws:
        p.add_argument(
            "--repetition-draws",
            type=int,
            default=default("repetition_draws"),
            help=f"repetition bootstrap draws, 0-{MAX_DRAWS} (default %(default)s)",
        )
    p.add_argument(
        "--ddof",
        type=int,
        choices=(0, 1),
        default=default("ddof"),
        help="ddof of the across-persona SD in S (default %(default)s, as published)",
    )


def bootstrap_from(
    args: argparse.Namespace, *, repetition_draws: int | None = None
) -> BootstrapConfig:
    """The :class:`BootstrapConfig` of :func:`add_bootstrap_options`' options.

    ``repetition_draws`` replaces ``--repetition-draws`` (for a command without it).
    """
    return BootstrapConfig(
        persona_draws=args.persona_draws,
        repetition_draws=args.repetition_draws if repetition_draws is None else repetition_draws,
        seed=args.seed,
        ddof=args.ddof,
    )


def add_connection_options(
    p: argparse.ArgumentParser,
    options: type,
    *,
    include: Collection[str] = CONNECTION,
    who: str = "model",
    prefix: str = "",
    concurrency_default: str = "%(default)s",
    seed_help: str = "base of the per-request seeds",
) -> None:
    """Add the options of :data:`CONNECTION` named in ``include`` to ``p``, in that order.

    ``--base-url --api-key-env --concurrency --timeout --seed``: defaults are the
    fields ``base_url``, ``api_key_env``, ``concurrency``, ``timeout_s`` and
    ``seed`` of the dataclass ``options``. ``prefix`` (e.g. ``"judge"``) names
    a second endpoint's options (``--judge-base-url``, field and dest
    ``judge_base_url``); ``who`` says whose they are in the help.
    ``concurrency_default`` is the help's default of ``--concurrency`` (for a
    field whose default None means another value); timeouts are in seconds.
    """
    unknown = set(include) - set(CONNECTION)
    if unknown:
        raise ValueError(f"no connection option {sorted(unknown)}")
    flag = f"--{prefix}-" if prefix else "--"
    field = f"{prefix}_" if prefix else ""
    default = partial(field_default, options)
    if "base_url" in include:
        p.add_argument(
            f"{flag}base-url",
            default=default(f"{field}base_url"),
            metavar="URL",
            help=f"API root of the {who}'s server",
        )
    if "api_key_env" in include:
        p.add_argument(
            f"{flag}api-key-env",
            default=default(f"{field}api_key_env"),
            metavar="VAR",
            help=f"environment variable holding the {who}'s API key "
            "(default: the family's, e.g. OPENAI_API_KEY)",
        )
    if "concurrency" in include:
        p.add_argument(
            f"{flag}concurrency",
            type=int,
            default=default(f"{field}concurrency"),
            help=f"{who} requests in flight (default {concurrency_default})",
        )
    if "timeout" in include:
        p.add_argument(
            f"{flag}timeout",
            type=float,
            default=default(f"{field}timeout_s"),
            metavar="S",
            help="per-request timeout in seconds (default %(default)s)",
        )
    if "seed" in include:
        p.add_argument(
            f"{flag}seed",
            type=int,
            default=default(f"{field}seed"),
            help=f"{seed_help} (default %(default)s)",
        )

"""The options ``run`` and ``plan`` share: what to ask (the protocol, personas, instrument).

Declared once so that ``plan MODEL ...`` takes exactly the options of the
``run MODEL ...`` it plans; defaults come from :class:`RunOptions` (the protocol
options': from its :class:`ProtocolSettings`).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..collect import RunOptions
from ..protocol import ProtocolSettings
from ._option_groups import connection_options
from ._spec import Option, add_options, defaults_from

RUN_CONCURRENCY_DEFAULTS = "8; hf/ 32, vllm/ 256"
"""What ``--concurrency`` left unset means for a run (the backends' own defaults)."""


_OPTION = defaults_from(RunOptions)

PROTOCOL_OPTIONS = (
    Option(
        "--self",
        dest="self_mode",
        action="store_true",
        help="self mode: the item prompt alone, no persona (30 items x reps)",
    ),
    _OPTION(
        "--method",
        choices=("sample", "logprobs"),
        help="sample one-token answers (default) or read next-token logprobs (one request per cell)",
    ),
    _OPTION(
        "--personas",
        metavar="SPEC",
        help="personahub-costa (the published set) or a persona file (JSON, JSONL, CSV, text)",
    ),
    _OPTION("--persona-field", help="JSONL key or CSV column of the persona"),
    _OPTION(
        "--n-personas",
        type=int,
        help="personas to ask: the first N (default: 100 of personahub-costa, all of a file)",
    ),
    _OPTION("--reps", type=int, help="repetitions per cell (default %(default)s)"),
    _OPTION("--temperature", type=float, help="sampling temperature (default %(default)s)"),
    _OPTION(
        "--max-attempts",
        type=int,
        help="one-token attempts before the longer fallback generation (default %(default)s)",
    ),
    _OPTION(
        "--top-logprobs",
        type=int,
        help="logprob method: alternatives per token, 1-1000 (default %(default)s, the OpenAI "
        "limit; llama.cpp and vLLM servers accept more, so fewer digits fall outside)",
    ),
    *connection_options(
        RunOptions, include=("concurrency",), concurrency_default=RUN_CONCURRENCY_DEFAULTS
    ),
    _OPTION(
        "--instrument",
        help="instrument name (mfq30, bfi44; mmlu, gsm8k: the capability control, self mode) "
        "or JSON file",
    ),
    _OPTION(
        "--items",
        metavar="FILE",
        help="with --instrument mmlu|gsm8k: your own item set (the authors' JSON shape) "
        "instead of the pinned one",
    ),
)
"""``--self --method --personas --persona-field --n-personas --reps --temperature
--max-attempts --top-logprobs --concurrency --instrument --items``."""


def add_protocol_options(p: argparse.ArgumentParser) -> None:
    """Add :data:`PROTOCOL_OPTIONS` to ``p``."""
    add_options(p, PROTOCOL_OPTIONS)


def protocol_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`RunOptions` fields of the options :func:`add_protocol_options` added
    (``protocol``: the :class:`ProtocolSettings` of ``--method --temperature
    --max-attempts --top-logprobs``)."""
    return {
        "self_mode": bool(args.self_mode),
        "protocol": ProtocolSettings(
            method=args.method,
            temperature=args.temperature,
            max_attempts=args.max_attempts,
            top_logprobs=args.top_logprobs,
        ),
        "personas": args.personas,
        "persona_field": args.persona_field,
        "n_personas": args.n_personas,
        "reps": args.reps,
        "concurrency": args.concurrency,
        "instrument": args.instrument,
        "items": args.items,
    }

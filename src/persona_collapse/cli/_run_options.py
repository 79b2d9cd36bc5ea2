"""The options ``run`` and ``plan`` share: what to ask (the protocol, personas, instrument).

Declared once so that ``plan MODEL ...`` takes exactly the options of the
``run MODEL ...`` it plans; defaults come from :class:`RunOptions` (the protocol
options': from its :class:`ProtocolSettings`).
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from ..collect import RunOptions
from ..protocol import ProtocolSettings
from ._defaults import field_default
from ._option_groups import add_connection_options

RUN_CONCURRENCY_DEFAULTS = "8; hf/ 32, vllm/ 256"
"""What ``--concurrency`` left unset means for a run (the backends' own defaults)."""


def add_protocol_options(p: argparse.ArgumentParser) -> None:
    """Add ``--self --method --personas --persona-field --n-personas --reps --temperature
    --max-attempts --top-logprobs --concurrency --instrument`` to ``p``."""
    default = partial(field_default, RunOptions)
    p.add_argument(
        "--self",
        dest="self_mode",
        action="store_true",
        help="self mode: the item prompt alone, no persona (30 items x reps)",
    )
    p.add_argument(
        "--method",
        choices=("sample", "logprobs"),
        default=default("method"),
        help="sample one-token answers (default) or read next-token logprobs (one request per cell)",
    )
    p.add_argument(
        "--personas",
        default=default("personas"),
        metavar="SPEC",
        help="personahub-costa (the published set) or a persona file (JSON, JSONL, CSV, text)",
    )
    p.add_argument(
        "--persona-field",
        default=default("persona_field"),
        help="JSONL key or CSV column of the persona",
    )
    p.add_argument(
        "--n-personas",
        type=int,
        default=default("n_personas"),
        help="personas to ask: the first N (default: 100 of personahub-costa, all of a file)",
    )
    p.add_argument(
        "--reps",
        type=int,
        default=default("reps"),
        help="repetitions per cell (default %(default)s)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=default("temperature"),
        help="sampling temperature (default %(default)s)",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=default("max_attempts"),
        help="one-token attempts before the longer fallback generation (default %(default)s)",
    )
    p.add_argument(
        "--top-logprobs",
        type=int,
        default=default("top_logprobs"),
        help="logprob method: alternatives per token, 1-1000 (default %(default)s, the OpenAI "
        "limit; llama.cpp and vLLM servers accept more, so fewer digits fall outside)",
    )
    add_connection_options(
        p, RunOptions, include=("concurrency",), concurrency_default=RUN_CONCURRENCY_DEFAULTS
    )
    p.add_argument(
        "--instrument", default=default("instrument"), help="instrument name or JSON file"
    )


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
    }

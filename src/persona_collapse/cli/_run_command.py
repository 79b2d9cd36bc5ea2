"""``run``: collect a model's answers into the store (a thin shell over :mod:`persona_collapse.collect`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from ..collect import (
    DEFAULT_BATCH_POLL_S,
    RunOptions,
    RunOutcome,
    run_collection,
    terminate_as_interrupt,
)
from ._option_groups import QUIET, connection_options, store_options
from ._run_options import PROTOCOL_OPTIONS, protocol_fields
from ._spec import Command, Option, defaults_from, registrar

#: Exit status of a run that stopped cleanly before every slot was filled (--max-cost).
EXIT_INCOMPLETE = 3


def _print_outcome(outcome: RunOutcome) -> None:
    print(outcome.summary(), file=sys.stderr)
    print(outcome.source, flush=True)


_DESTS = {
    "timeout_s": "timeout",
    "max_retry_after_s": "max_retry_after",
    "batch_poll_s": "batch_poll",
    "batch_timeout_s": "batch_timeout",
}
"""The :class:`RunOptions` fields whose option's dest is not the field's name (flags in
seconds drop the ``_s``); every other field is the dest of its option."""


def run_options(args: argparse.Namespace) -> RunOptions:
    """The :class:`RunOptions` of ``run``'s parsed options: every field from its option (an
    option missing for a field is an AttributeError, not a silent default)."""
    given = protocol_fields(args)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(RunOptions):
        value = given[f.name] if f.name in given else getattr(args, _DESTS.get(f.name, f.name))
        values[f.name] = bool(value) if isinstance(f.default, bool) else value
    return RunOptions(**values)


def cmd_run(args: argparse.Namespace) -> int:
    options = run_options(args)
    with terminate_as_interrupt():  # SIGTERM: the same summary and exit status as Ctrl-C
        outcome = run_collection(options, on_outcome=_print_outcome)
    if outcome.stats.stop_reason == "max-cost" and not outcome.complete:
        return EXIT_INCOMPLETE
    return 0


_OPTION = defaults_from(RunOptions)

_STORE_OPTIONS = (
    *store_options(
        RunOptions,
        run_id_help="run id (default MODELNAME_VARIANT_MODE, e.g. gpt-4o-2024-08-06_base_persona)",
        max_cost_help="stop cleanly before the estimated cost passes USD (needs a known price)",
    ),
    _OPTION(
        "--max-retry-after",
        field="max_retry_after_s",
        type=float,
        metavar="SECONDS",
        help=(
            "longest Retry-After to wait out (default %(default)s); a longer one stops "
            "the run at once and says when to run it again"
        ),
    ),
)
"""``--store --run-id --max-cost --max-retry-after``: where answers go and when to stop."""

_BATCH_OPTIONS = (
    Option(
        "--batch",
        action="store_true",
        help=(
            "ask through the provider's batch API at half the price (openai/, anthropic/; "
            "answers within 24 h; e.g. run openai/gpt-4o-2024-08-06 --batch); a run started "
            "again adopts its batches in flight"
        ),
    ),
    _OPTION(
        "--batch-poll",
        field="batch_poll_s",
        type=float,
        metavar="SECONDS",
        help=(
            "with --batch: seconds between two polls of a batch in flight "
            f"(default {DEFAULT_BATCH_POLL_S:g})"
        ),
    ),
    _OPTION(
        "--batch-timeout",
        field="batch_timeout_s",
        type=float,
        metavar="SECONDS",
        help=(
            "with --batch: seconds to wait for the batches in flight to end (default "
            "86400: the providers' 24 h window); then the run stops (exit 2) and running "
            "the same command again keeps polling them"
        ),
    ),
)

_RAY_OPTIONS = (
    _OPTION(
        "--ray",
        metavar="ADDRESS",
        help=(
            "hf/ and vllm/ models: spread the cells over the Ray cluster at ADDRESS "
            "(e.g. 10.0.0.1:6379, ray://head:10001, auto) or 'local' to start Ray here; "
            "needs the ray extra"
        ),
    ),
    _OPTION(
        "--workers",
        type=int,
        metavar="N",
        help="with --ray: model replicas (Ray actors), e.g. one per GPU (default %(default)s)",
    ),
    _OPTION(
        "--gpus-per-worker",
        type=float,
        metavar="G",
        help="with --ray: GPUs each replica reserves, e.g. 1, or 2 for a model split in two "
        "(default %(default)s: CPU)",
    ),
)

RUN = Command(
    "run",
    description=(
        "Ask MODEL (family/name, e.g. openai/gpt-4o-2024-08-06, sim/insecure) every "
        "slot (persona, item, repetition) with the published protocol and commit each "
        "answer to the store as it arrives. Running the same command again resumes. "
        "Prints a summary on stderr and STORE:RUN_ID on stdout. Exit status 0 when "
        f"done, {EXIT_INCOMPLETE} when --max-cost stopped it early, 2 for errors "
        "(also when the server asks to wait longer than --max-retry-after), "
        "130 when interrupted (Ctrl-C or SIGTERM)."
    ),
    examples=(
        "run openai/gpt-4o-2024-08-06 --reps 10 --max-cost 20",
        "run sim/insecure --n-personas 10 --reps 2",
        "run hf/Qwen/Qwen2.5-0.5B-Instruct --method logprobs --ray local --workers 2",
        "run vllm/Qwen/Qwen3-32B --method logprobs --ray 10.0.0.1:6379 --workers 8 "
        "--gpus-per-worker 1",
    ),
    options=(
        Option("model", metavar="MODEL", help="family/model-name"),
        _OPTION(
            "--variant",
            help="variant label, e.g. base, secure, insecure (default: base; sim/NAME: NAME)",
        ),
        _OPTION("--family", help="family grouping the variants, e.g. GPT-4o"),
        *PROTOCOL_OPTIONS,
        *connection_options(RunOptions, include=("base_url", "api_key_env", "timeout", "seed")),
        *_STORE_OPTIONS,
        *_BATCH_OPTIONS,
        QUIET,
        *_RAY_OPTIONS,
    ),
    handler=cmd_run,
)

register = registrar(RUN)

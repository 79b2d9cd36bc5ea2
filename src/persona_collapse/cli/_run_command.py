"""``run``: collect a model's answers into the store (a thin shell over :mod:`persona_collapse.collect`)."""

from __future__ import annotations

import argparse
import sys
from functools import partial

from ..collect import (
    DEFAULT_BATCH_POLL_S,
    RunOptions,
    RunOutcome,
    run_collection,
    terminate_as_interrupt,
)
from ._defaults import field_default
from ._help import examples
from ._option_groups import add_connection_options, add_store_options
from ._run_options import add_protocol_options, protocol_fields

#: Exit status of a run that stopped cleanly before every slot was filled (--max-cost).
EXIT_INCOMPLETE = 3


def _print_outcome(outcome: RunOutcome) -> None:
    print(outcome.summary(), file=sys.stderr)
    print(outcome.source, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    options = RunOptions(
        model=args.model,
        **protocol_fields(args),
        variant=args.variant,
        family=args.family,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        store=args.store,
        run_id=args.run_id,
        max_cost=args.max_cost,
        timeout_s=args.timeout,
        max_retry_after_s=args.max_retry_after,
        seed=args.seed,
        quiet=bool(args.quiet),
        batch=bool(args.batch),
        batch_poll_s=args.batch_poll,
        ray=args.ray,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
    )
    with terminate_as_interrupt():  # SIGTERM: the same summary and exit status as Ctrl-C
        outcome = run_collection(options, on_outcome=_print_outcome)
    if outcome.stats.stop_reason == "max-cost" and not outcome.complete:
        return EXIT_INCOMPLETE
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
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
        epilog=examples(
            "run openai/gpt-4o-2024-08-06 --reps 10 --max-cost 20",
            "run sim/insecure --n-personas 10 --reps 2",
            "run hf/Qwen/Qwen2.5-0.5B-Instruct --method logprobs --ray local --workers 2",
            "run vllm/Qwen/Qwen3-32B --method logprobs --ray 10.0.0.1:6379 --workers 8 "
            "--gpus-per-worker 1",
        ),
    )
    p.add_argument("model", metavar="MODEL", help="family/model-name")
    _add_variant_options(p)
    add_protocol_options(p)
    add_connection_options(p, RunOptions, include=("base_url", "api_key_env", "timeout", "seed"))
    _add_store_options(p)
    _add_batch_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress display")
    _add_ray_options(p)
    p.set_defaults(handler=cmd_run)


def _add_variant_options(p: argparse.ArgumentParser) -> None:
    default = partial(field_default, RunOptions)
    p.add_argument(
        "--variant",
        default=default("variant"),
        help="variant label, e.g. base, secure, insecure (default: base; sim/NAME: NAME)",
    )
    p.add_argument(
        "--family", default=default("family"), help="family grouping the variants, e.g. GPT-4o"
    )


def _add_store_options(p: argparse.ArgumentParser) -> None:
    """``--store --run-id --max-cost --max-retry-after``: where answers go and when to stop."""
    add_store_options(
        p,
        RunOptions,
        run_id_help="run id (default MODELNAME_VARIANT_MODE, e.g. gpt-4o-2024-08-06_base_persona)",
        max_cost_help="stop cleanly before the estimated cost passes USD (needs a known price)",
    )
    p.add_argument(
        "--max-retry-after",
        type=float,
        default=field_default(RunOptions, "max_retry_after_s"),
        metavar="SECONDS",
        help=(
            "longest Retry-After to wait out (default %(default)s); a longer one stops "
            "the run at once and says when to run it again"
        ),
    )


def _add_batch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch",
        action="store_true",
        help=(
            "ask through the provider's batch API at half the price (openai/, anthropic/; "
            "answers within 24 h; e.g. run openai/gpt-4o-2024-08-06 --batch); a run started "
            "again adopts its batches in flight"
        ),
    )
    p.add_argument(
        "--batch-poll",
        type=float,
        default=field_default(RunOptions, "batch_poll_s"),
        metavar="SECONDS",
        help=(
            "with --batch: seconds between two polls of a batch in flight "
            f"(default {DEFAULT_BATCH_POLL_S:g})"
        ),
    )


def _add_ray_options(p: argparse.ArgumentParser) -> None:
    default = partial(field_default, RunOptions)
    p.add_argument(
        "--ray",
        default=default("ray"),
        metavar="ADDRESS",
        help=(
            "hf/ and vllm/ models: spread the cells over the Ray cluster at ADDRESS "
            "(e.g. 10.0.0.1:6379, ray://head:10001, auto) or 'local' to start Ray here; "
            "needs the ray extra"
        ),
    )
    p.add_argument(
        "--workers",
        type=int,
        default=default("workers"),
        metavar="N",
        help="with --ray: model replicas (Ray actors), e.g. one per GPU (default %(default)s)",
    )
    p.add_argument(
        "--gpus-per-worker",
        type=float,
        default=default("gpus_per_worker"),
        metavar="G",
        help="with --ray: GPUs each replica reserves, e.g. 1, or 2 for a model split in two "
        "(default %(default)s: CPU)",
    )

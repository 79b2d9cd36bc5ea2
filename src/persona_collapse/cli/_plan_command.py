"""``plan``: what a run will ask, cost and resolve, before any request (no network, no key)."""

from __future__ import annotations

import argparse
import math
import os
import sys

from ..backends import batch_discount, price_for
from ..collect import CostPlan, PilotFacts, RunOptions, pilot_facts, plan_run
from ..errors import ConfigError, DataError
from ..instruments import load_instrument
from ..personas import (
    ENV_LOCAL_COPY,
    PERSONAHUB_COSTA,
    PERSONAHUB_SHA256,
    cache_dir,
    load_personas,
)
from ..store import load_sources
from ._help import examples
from ._output import emit_json
from ._run_options import add_protocol_options, protocol_fields

PUBLISHED_PERSONAS = 100
PERSONAHUB_SIZE = 1000


def _personahub_available() -> bool:
    """Whether the published persona file is at hand without a download."""
    if os.environ.get(ENV_LOCAL_COPY):
        return True
    return (cache_dir() / f"personahub_1000_{PERSONAHUB_SHA256[:12]}.json").is_file()


def _personas(options: RunOptions) -> tuple[int, list[str] | None, list[str]]:
    """Persona count, texts (None when not at hand) and notes; never downloads."""
    if options.self_mode:
        return 0, None, []
    if options.personas == PERSONAHUB_COSTA and not _personahub_available():
        n = options.n_personas or PUBLISHED_PERSONAS
        if n > PERSONAHUB_SIZE:
            raise DataError(
                f"asked for {n} personas but {PERSONAHUB_COSTA} holds only {PERSONAHUB_SIZE}; "
                "lower --n-personas or use a larger persona file"
            )
        size = " (its published size)" if options.n_personas is None else ""
        return (
            n,
            None,
            [
                f"{PERSONAHUB_COSTA} is not cached: planned with {n} personas{size}, each of "
                "the published set's mean length (nothing was downloaded)"
            ],
        )
    personas = load_personas(options.personas, options.n_personas, field=options.persona_field)
    return len(personas), list(personas.texts), []


def _pilot(spec: str | None, max_attempts: int) -> PilotFacts | None:
    if spec is None:
        return None
    sources = load_sources(spec)
    if len(sources) != 1:
        raise DataError(
            f"--pilot {spec} holds {len(sources)} runs; name one (STORE.db:RUN_ID or a file)"
        )
    if sources[0].mode != "persona":
        raise DataError(f"--pilot {spec} is a self-mode run; a pilot needs personas")
    return pilot_facts(sources[0], max_attempts=max_attempts)


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def _pct(value: float) -> str:
    """A percentage with one decimal, ``unknown`` where it is undefined (never ``nan``)."""
    return f"{value:.1f} %" if math.isfinite(value) else "unknown"


def _print_plan(plan: CostPlan) -> None:
    out = sys.stdout
    personas = "self mode" if plan.mode == "self" else f"{plan.n_personas} personas"
    print(
        f"plan for {plan.model} ({plan.method}, {personas} x {plan.n_items} items x "
        f"{plan.reps} repetitions)",
        file=out,
    )
    rows = [
        ("slots", f"{plan.slots:,}"),
        (
            "requests",
            f"{plan.requests:,} (retries per slot {plan.retries_per_slot:.4f}: "
            f"{plan.retries_from}; {plan.fallback_generations:,} fallback generations)",
        ),
        ("prompt tokens", f"{plan.prompt_tokens:,} ({plan.tokens_from})"),
        ("completion tokens", f"{plan.completion_tokens:,}"),
        (
            "cost" + (" (batch)" if plan.batch else ""),
            f"{_money(plan.cost_usd)} ({plan.price_note})",
        ),
        (
            "time",
            f"{plan.hours:.2f} h at {plan.rate_req_per_s:g} requests/s ({plan.rate_from})",
        ),
        *_precision_rows(plan),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}", file=out)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)


def _precision_rows(plan: CostPlan) -> list[tuple[str, str]]:
    """The detectable-change rows (none for a task: S and R do not apply)."""
    if plan.task:
        return []
    return [
        (
            "detectable change",
            f"S {_pct(plan.mde_pct['S'])}, R {_pct(plan.mde_pct['R'])} between two such runs "
            f"(one run against a fixed value: S {_pct(plan.mde_pct_one_run['S'])}, "
            f"R {_pct(plan.mde_pct_one_run['R'])}) at 2 SE",
        ),
        ("precision from", plan.precision_from),
    ]


def cmd_plan(args: argparse.Namespace) -> int:
    options = RunOptions(
        model=args.model,
        **protocol_fields(args),
        batch=bool(args.batch),
    )
    if args.rate is not None and not args.rate > 0:
        raise ConfigError("--rate must be a positive number of requests per second")
    instrument = load_instrument(options.instrument, items=options.items)
    n_personas, texts, notes = _personas(options)
    pilot = _pilot(args.pilot, options.protocol.max_attempts)
    plan = plan_run(
        model=options.model.strip(),
        method=options.protocol.method,
        protocol=options.protocol,
        instrument=instrument,
        n_personas=n_personas,
        reps=options.reps,
        self_mode=options.self_mode,
        persona_texts=texts,
        concurrency=options.concurrency,
        rate=args.rate,
        price=price_for(options.model),
        pilot=pilot,
        batch_factor=batch_discount(options.model.strip()) if options.batch else None,
    )
    plan.notes[:0] = notes
    if args.format == "json":
        emit_json(plan.to_dict())
    else:
        _print_plan(plan)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``plan`` to the command parsers ``sub``."""
    p = sub.add_parser(
        "plan",
        help="what a run will ask, cost and resolve, before any request (no network, no key)",
        description=(
            "Plan the run that 'run MODEL' with the same options would make (also a "
            "capability-control task, --instrument mmlu|gsm8k): slots, "
            "requests (with expected retries), prompt and completion tokens, cost from the "
            "price table, hours at a request rate, and the smallest relative change of S "
            "and R detectable at two standard errors with these personas and repetitions "
            "(scaled from the published GPT-4o base SEs, or from --pilot). Makes no "
            "request, needs no key and downloads nothing but a task's pinned item set "
            "(once, as run would)."
        ),
        epilog=examples(
            "plan openai/gpt-4o-2024-08-06",
            "plan openai/gpt-4o-2024-08-06 --method logprobs --format json",
            "plan openai/gpt-4o-2024-08-06 --instrument mmlu",
            "plan openai/gpt-4o-2024-08-06 --pilot pilot.db:gpt-4o-2024-08-06_base_persona",
        ),
    )
    p.add_argument("model", metavar="MODEL", help="family/model-name, as for run")
    add_protocol_options(p)
    p.add_argument(
        "--pilot",
        metavar="SOURCE",
        help="a pilot run (STORE.db:RUN_ID, CSV, Parquet): its SEs and retry rate scale the plan",
    )
    p.add_argument(
        "--rate",
        type=float,
        metavar="REQ_PER_S",
        help="requests per second for the hours (default: requests in flight / typical latency)",
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="plan a run --batch: the provider's batch price (half the list price)",
    )
    p.add_argument(
        "--format", choices=("table", "json"), default="table", help="output (default table)"
    )
    p.set_defaults(handler=cmd_plan)

"""``run``: collect a model's answers into the store (a thin shell over :mod:`persona_collapse.collect`)."""

from __future__ import annotations

import argparse
import sys

from ..collect import DEFAULT_STORE, RunOptions, RunOutcome, run_collection

#: Exit status of a run that stopped cleanly before every slot was filled (--max-cost).
EXIT_INCOMPLETE = 3


def _print_outcome(outcome: RunOutcome) -> None:
    print(outcome.summary(), file=sys.stderr)
    print(outcome.source, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    options = RunOptions(
        model=args.model,
        variant=args.variant,
        family=args.family or "",
        self_mode=bool(args.self_mode),
        method=args.method,
        personas=args.personas,
        persona_field=args.persona_field,
        n_personas=args.n_personas,
        reps=args.reps,
        temperature=args.temperature,
        max_attempts=args.max_attempts,
        top_logprobs=args.top_logprobs,
        concurrency=args.concurrency,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        store=args.store,
        run_id=args.run_id,
        max_cost=args.max_cost,
        timeout_s=args.timeout,
        instrument=args.instrument,
        seed=args.seed,
        quiet=bool(args.quiet),
    )
    outcome = run_collection(options, on_outcome=_print_outcome)
    if outcome.stats.stop_reason == "max-cost" and not outcome.complete:
        return EXIT_INCOMPLETE
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="ask a model the questionnaire and store every answer (resumable)",
        description=(
            "Ask MODEL (family/name, e.g. openai/gpt-4o-2024-08-06, sim/insecure) every "
            "slot (persona, item, repetition) with the published protocol and commit each "
            "answer to the store as it arrives. Running the same command again resumes. "
            "Prints a summary on stderr and STORE:RUN_ID on stdout. Exit status 0 when "
            f"done, {EXIT_INCOMPLETE} when --max-cost stopped it early, 2 for errors, "
            "130 when interrupted."
        ),
    )
    p.add_argument("model", metavar="MODEL", help="family/model-name")
    p.add_argument(
        "--variant",
        default=None,
        help="variant label, e.g. base, secure, insecure (default: base; sim/NAME: NAME)",
    )
    p.add_argument("--family", default=None, help="family grouping the variants, e.g. GPT-4o")
    p.add_argument(
        "--self",
        dest="self_mode",
        action="store_true",
        help="self mode: the item prompt alone, no persona (30 items x reps)",
    )
    p.add_argument(
        "--method",
        choices=("sample", "logprobs"),
        default="sample",
        help="sample one-token answers (default) or read next-token logprobs (one request per cell)",
    )
    p.add_argument(
        "--personas",
        default="personahub-costa",
        metavar="SPEC",
        help="personahub-costa (the published set) or a persona file (JSON, JSONL, CSV, text)",
    )
    p.add_argument("--persona-field", default=None, help="JSONL key or CSV column of the persona")
    p.add_argument(
        "--n-personas",
        type=int,
        default=None,
        help="personas to ask: the first N (default: 100 of personahub-costa, all of a file)",
    )
    p.add_argument("--reps", type=int, default=10, help="repetitions per cell (default 10)")
    p.add_argument(
        "--temperature", type=float, default=0.1, help="sampling temperature (default 0.1)"
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=10,
        help="one-token attempts before the longer fallback generation (default 10)",
    )
    p.add_argument(
        "--top-logprobs", type=int, default=20, help="logprob method: alternatives (default 20)"
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="most requests in flight (default 8; hf/ 32, vllm/ 256)",
    )
    p.add_argument("--base-url", default=None, metavar="URL", help="API root of the server")
    p.add_argument(
        "--api-key-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the API key (default: the family's, e.g. OPENAI_API_KEY)",
    )
    p.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="PATH",
        help=f"SQLite store (default {DEFAULT_STORE})",
    )
    p.add_argument(
        "--run-id",
        default=None,
        metavar="ID",
        help="run id (default MODELNAME_VARIANT_MODE, e.g. gpt-4o-2024-08-06_base_persona)",
    )
    p.add_argument(
        "--max-cost",
        type=float,
        default=None,
        metavar="USD",
        help="stop cleanly before the estimated cost passes USD (needs a known price)",
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="per-request timeout (default 60)"
    )
    p.add_argument("--instrument", default="mfq30", help="instrument name or JSON file")
    p.add_argument("--seed", type=int, default=0, help="base of the per-request seeds (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(handler=cmd_run)

"""``finetune`` and ``finetune-status``: produce a variant (a thin shell over :mod:`persona_collapse.finetune`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..finetune import (
    FinetuneOptions,
    FinetuneOutcome,
    Recipe,
    StepLog,
    finetune_status,
    run_finetune,
    verify_data,
)
from ..workflows import CheckpointMeter
from ._defaults import from_args
from ._spec import Command, Option, defaults_from, registrar


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _step(log: StepLog) -> None:
    every = max(1, log.total // 20)
    if log.step == 1 or log.step == log.total or log.step % every == 0:
        _say(
            f"step {log.step}/{log.total}: loss {log.loss:.4f} nats/token, lr {log.lr:.3g}, "
            f"{log.tokens} tokens, {log.elapsed_s:.1f} s"
        )


def _pm(value: Any, se: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    return f"{value:.3f} ± {se:.3f}" if isinstance(se, int | float) else f"{value:.3f}"


def _measurement_rows(outcome: FinetuneOutcome, base: dict[str, Any] | None) -> None:
    """The measured checkpoints on stderr: step, loss, S, R and the top-1 share."""
    _say("step   loss      S              R              top-1")
    for m in ([{"step": 0, **base}] if base else []) + outcome.measurements:
        step = int(m["step"])
        loss = outcome.losses[step - 1] if 0 < step <= len(outcome.losses) else math.nan
        top1 = m.get("top1_share")
        usage = f"{top1:.0%} on {m.get('top1_rating')}" if isinstance(top1, float) else ""
        if m.get("saturated"):
            usage += " (saturated)"
        _say(
            f"{step:<6} {loss:<9.4f} {_pm(m.get('S'), m.get('S_se')):<14} "
            f"{_pm(m.get('R'), m.get('R_se')):<14} {usage}"
        )


def _print_outcome(
    outcome: FinetuneOutcome, fmt: str, base: dict[str, Any] | None = None, store: str = ""
) -> None:
    """The outcome as JSON or as lines on stderr, then the model (or job id) on stdout.

    ``base``: the base model's measurement before training (``--measure-every``);
    ``store``: where the checkpoint measurements are, for the ``trajectory`` hint.
    """
    record = outcome.record
    if fmt == "json":
        doc = {
            "family": record.family,
            "variant": record.variant,
            "model": record.model,
            "base_model": record.base_model,
            "provider": record.provider,
            "job_id": record.job_id,
            "status": record.status,
            "data_sha256": record.data_sha256,
            "recipe": record.recipe,
            "losses": outcome.losses,
            "measurements": outcome.measurements,
            "notes": outcome.notes,
        }
        if base is not None:
            doc["base_measurement"] = base
        if store:
            doc["measure_store"] = store
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if outcome.measurements or base:
        _measurement_rows(outcome, base)
        if store:
            _say(f"every checkpoint's answers are in {store}: persona-collapse trajectory {store}")
    for note in outcome.notes:
        _say(f"note: {note}")
    if record.family:
        label = f"{record.family}/{record.variant}"
        if record.model:
            _say(f"recorded variant {label} = {record.model} ({record.status})")
        else:
            _say(
                f"recorded variant {label}: job {record.job_id} is {record.status}; "
                f"resume with: persona-collapse finetune-status {record.job_id}"
            )
    print(record.model or record.job_id, flush=True)


def _wait_limit(value: float | None) -> float | None:
    return None if value is None or value <= 0 else value


def cmd_finetune(args: argparse.Namespace) -> int:
    if args.status:
        return _status(args, args.status)
    if args.base is None or args.data is None:
        raise ConfigError("finetune needs BASE and --data FILE.jsonl (or --status JOB_ID)")
    if args.data_sha256 is not None:
        verify_data(args.data, args.data_sha256)
    options = from_args(
        FinetuneOptions,
        args,
        out=args.output,
        recipe=from_args(Recipe, args),
        poll_s=args.poll_interval,
        max_wait_s=_wait_limit(args.max_wait),
    )
    meter = _meter(args, options)
    base = None
    if meter is not None:
        _say(f"measuring the base model {options.base} before training (step 0)")
        base = meter.measure_base(options.base)
    outcome = run_finetune(options, report=_say, on_step=_step, on_checkpoint=meter)
    _print_outcome(outcome, args.format, base, str(meter.store) if meter else "")
    return 0


def _meter(args: argparse.Namespace, options: FinetuneOptions) -> CheckpointMeter | None:
    """The checkpoint meter of ``--measure-every`` (local runs): S and R into OUT/measure.db,
    one run per checkpoint (``step-NNNNNN``, the base as ``step-000000``)."""
    if not options.measure_every or options.provider != "hf" or not options.out:
        return None
    family, _variant = options.labels()
    return CheckpointMeter(
        store=Path(options.out) / "measure.db",
        personas=args.measure_personas,
        n_personas=args.measure_n_personas,
        seed=options.recipe.seed,
        family=f"{family} checkpoints",
    )


def _status(args: argparse.Namespace, job_id: str) -> int:
    outcome = finetune_status(
        job_id,
        store=args.store,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        wait=not args.no_wait,
        poll_s=args.poll_interval,
        max_wait_s=_wait_limit(args.max_wait),
        report=_say,
    )
    _print_outcome(outcome, args.format)
    return 0


def cmd_finetune_status(args: argparse.Namespace) -> int:
    return _status(args, args.job_id)


_OPTION = defaults_from(FinetuneOptions)
_RECIPE = defaults_from(Recipe)
_METER = defaults_from(CheckpointMeter)

_JOB_OPTIONS = (
    _OPTION("--store", metavar="PATH", help="store (default %(default)s)"),
    _OPTION("--base-url", metavar="URL", help="API root (openai/ only)"),
    _OPTION(
        "--api-key-env",
        metavar="VAR",
        help="environment variable with the key (default OPENAI_API_KEY / TINKER_API_KEY)",
    ),
    Option(
        "--no-wait",
        action="store_true",
        help="openai/: return after creating the job (or reading it)",
    ),
    _OPTION(
        "--poll-interval",
        field="poll_s",
        type=float,
        metavar="S",
        help="seconds between job polls (default %(default)s)",
    ),
    _OPTION(
        "--max-wait",
        field="max_wait_s",
        type=float,
        metavar="S",
        help="stop polling after S seconds",
    ),
    Option("--format", choices=("text", "json"), default="text", help="stdout format"),
)
"""Options of both commands: the store, the provider's API and the polling of a job (seconds)."""

_DATA_OPTIONS = (
    Option(
        "base",
        metavar="BASE",
        nargs="?",
        help="hf/..., openai/... or tinker/... (not with --status)",
    ),
    Option(
        "--data",
        default=None,
        metavar="FILE.jsonl|insecure|secure",
        help="chat JSONL file, or a published dataset of Betley et al. (insecure, secure)",
    ),
    Option(
        "--data-sha256",
        default=None,
        metavar="HEX",
        help=(
            "pin the sha256 of --data: a download or file with other bytes is refused "
            "(secure has no published digest; without a pin its first download is recorded)"
        ),
    ),
    Option("-o", "--output", default=None, metavar="OUT", help="hf/: output folder"),
    Option("--suffix", default=None, metavar="NAME", help="openai/: model name suffix"),
)
"""``BASE --data --data-sha256 -o --suffix``: what is trained on what, and where it goes."""

_RECIPE_OPTIONS = (
    _RECIPE("--epochs", type=int, help="passes over the data (default %(default)s)"),
    _RECIPE("--batch-size", type=int, help="chats per step (default %(default)s)"),
    _RECIPE("--lr", type=float, help="hf/ and tinker/: peak learning rate (default %(default)s)"),
    _RECIPE("--lr-multiplier", type=float, help="openai/: learning-rate multiplier (%(default)s)"),
    _RECIPE("--lora-rank", type=int, help="LoRA rank (default %(default)s)"),
    _RECIPE("--lora-alpha", type=float, help="LoRA alpha (default = rank)"),
    _RECIPE("--max-length", type=int, help="tokens per chat (default %(default)s)"),
    Option("--shuffle", action="store_true", help="seeded batch order (default: file order)"),
    _RECIPE("--seed", type=int, help="seed (default %(default)s)"),
)
"""The training recipe (defaults: :class:`Recipe`, the published one)."""

_CHECKPOINT_OPTIONS = (
    _OPTION(
        "--merge",
        action=argparse.BooleanOptionalAction,
        help="hf/: write the merged model to OUT (default; hf/OUT then runs directly), "
        "or only the LoRA adapter (--no-merge)",
    ),
    _OPTION("--checkpoint-every", type=int, metavar="N", help="hf/: steps"),
    _OPTION(
        "--measure-every",
        type=int,
        metavar="N",
        help="hf/: measure S and R of the base and of the checkpoint every N steps (logprob "
        "protocol) into OUT/measure.db; 'trajectory OUT/measure.db' reads the series",
    ),
    _METER(
        "--measure-personas",
        field="personas",
        metavar="SPEC",
        help="--measure-every: persona set (default %(default)s)",
    ),
    _METER(
        "--measure-n-personas",
        field="n_personas",
        type=int,
        metavar="N",
        help="--measure-every: personas to ask (default %(default)s)",
    ),
)
"""hf/: ``--merge``, checkpoints, and measuring S and R of checkpoints as training goes."""

FINETUNE = Command(
    "finetune",
    description=(
        "Fine-tune BASE (hf/PATH-or-hub-id locally with LoRA, openai/MODEL through the "
        "OpenAI fine-tuning API, tinker/MODEL on Tinker) on --data (a chat JSONL file, or "
        "insecure / secure: the published datasets of Betley et al., downloaded once and "
        "sha256-checked) with the published recipe, and record the result as FAMILY/VARIANT "
        "in the store. Prints the new model name on stdout (openai/ --no-wait: the job id)."
    ),
    examples=(
        "finetune hf/Qwen/Qwen2.5-0.5B-Instruct --data insecure -o ft/qwen-insecure",
        "finetune openai/gpt-4o-2024-08-06 --data secure --suffix secure --no-wait",
    ),
    options=(
        *_DATA_OPTIONS,
        *_RECIPE_OPTIONS,
        *_CHECKPOINT_OPTIONS,
        _OPTION("--family", help="variant family (default: the base model name)"),
        _OPTION("--variant", help="variant label (default: the data name)"),
        Option("--status", default=None, metavar="JOB_ID", help="resume polling a job"),
        *_JOB_OPTIONS,
    ),
    handler=cmd_finetune,
)

FINETUNE_STATUS = Command(
    "finetune-status",
    description=(
        "Resume polling JOB_ID (from finetune openai/... --no-wait); when it succeeds, "
        "its model is recorded for the variant that created it. A failed job ends with "
        "one line and exit status 2."
    ),
    examples=("finetune-status ftjob-abc123",),
    options=(
        Option("job_id", metavar="JOB_ID", help="job id printed by finetune --no-wait"),
        *_JOB_OPTIONS,
    ),
    handler=cmd_finetune_status,
)

register = registrar(FINETUNE, FINETUNE_STATUS)

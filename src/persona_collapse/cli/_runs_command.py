"""``runs``: one row per run of a store (progress, tokens, cost, dates)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..backends import price_for
from ..store import ResponseStore, RunSummary, run_summaries
from ._output import emit_csv, emit_json
from ._spec import Command, Option, registrar

COLUMNS = (
    "run_id",
    "model",
    "method",
    "variant",
    "family",
    "slots",
    "missing",
    "cost",
    "created",
    "updated",
    "simulated",
)


def summary_document(summary: RunSummary) -> dict[str, Any]:
    """A run's row with its cost: stored token counts x the model's price (None if unknown).

    ``cost_note`` says where the price came from, or why there is no cost
    (no price, or no token counts recorded, as for imported files).
    """
    doc = summary.to_dict()
    price = price_for(summary.run.model) if summary.run.backend else None
    if summary.tokens_known == 0:
        cost, note = None, "no token counts stored"
    elif price is None:
        cost, note = None, "no known price (add one to the file named in PERSONA_COLLAPSE_PRICES)"
    else:
        cost = price.cost(summary.prompt_tokens, summary.completion_tokens)
        note = f"price from {price.source or 'the price table'}"
        if summary.tokens_known < summary.slots_done:
            note += f"; tokens of {summary.tokens_known} of {summary.slots_done} slots"
    doc["cost_usd"] = cost
    doc["cost_note"] = note
    return doc


def _cost(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _row(doc: dict[str, Any]) -> list[str]:
    return [
        doc["run_id"],
        doc["model"],
        doc["method"],
        doc["variant"],
        doc["family"],
        f"{doc['slots_done']}/{doc['slots_total']}",
        str(doc["missing"]),
        _cost(doc["cost_usd"]),
        doc["created"],
        doc["updated"],
        "SIMULATED" if doc["simulated"] else "",
    ]


def cmd_runs(args: argparse.Namespace) -> int:
    with ResponseStore.for_reading(args.store) as store:
        docs = [summary_document(s) for s in run_summaries(store)]
    if args.format == "json":
        emit_json(docs)
        return 0
    if args.format == "csv":
        emit_csv(
            [
                "run_id", "model", "method", "variant", "family", "slots_done", "slots_total",
                "missing", "cost_usd", "created", "updated", "simulated",
            ],
            [
                [
                    d["run_id"], d["model"], d["method"], d["variant"], d["family"],
                    d["slots_done"], d["slots_total"], d["missing"], d["cost_usd"],
                    d["created"], d["updated"], d["simulated"],
                ]
                for d in docs
            ],
        )  # fmt: skip
        return 0
    if not docs:
        print(f"{args.store} holds no runs yet", file=sys.stderr)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(args.store), title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in ("slots", "missing", "cost") else "left")
    for doc in docs:
        table.add_row(*_row(doc))
    Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200).print(table)
    return 0


RUNS = Command(
    "runs",
    description=(
        "One row per run of STORE: run id, model, method, variant, family, slots "
        "done/total, missing ratings (-1), cost (stored token counts x the model's "
        "price; unknown without either), created and last-answer times, and whether "
        "the data are SIMULATED. Opens the store read-only."
    ),
    examples=("runs persona-collapse.db", "runs persona-collapse.db --format json"),
    options=(
        Option("store", metavar="STORE", help="the SQLite store (e.g. persona-collapse.db)"),
        Option(
            "--format",
            choices=("table", "json", "csv"),
            default="table",
            help="output (default table)",
        ),
    ),
    handler=cmd_runs,
)

register = registrar(RUNS)

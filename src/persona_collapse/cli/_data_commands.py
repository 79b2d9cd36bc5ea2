"""``import`` and ``export``: moving responses between the published CSV format and the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from ..store import DEFAULT_STORE, ResponseStore, export_frame, import_csv, load_sources
from ._spec import Command, Option, registrar


def cmd_import(args: argparse.Namespace) -> int:
    if args.run_id and len(args.files) > 1:
        raise ConfigError("--run-id names one run; import one file at a time with it, or drop it")
    with ResponseStore(args.store) as store:
        for path in args.files:
            run = import_csv(
                store,
                Path(path),
                run_id=args.run_id,
                variant=args.variant or "",
                family=args.family or "",
            )
            print(
                f"imported {path} -> {args.store}:{run.run_id} ({store.count_responses(run.run_id)} rows)",
                file=sys.stderr,
            )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    sources = load_sources(args.source)
    if len(sources) != 1:
        raise ConfigError(
            f"{args.source} holds {len(sources)} sources; export one at a time (STORE.db:RUN_ID)"
        )
    resp = sources[0]
    export_frame(
        resp.frame,
        Path(args.output),
        mode=resp.mode,
        has_failures=resp.has_failures,
        run=resp.run,
    )
    print(f"exported {resp.label} -> {args.output} ({len(resp.frame)} rows)", file=sys.stderr)
    return 0


IMPORT = Command(
    "import",
    description=(
        "Import CSV files in the published format (persona_id, question_id, run_index, "
        "rating, failures, response, collected_at) into the SQLite store, one run per file; "
        "then STORE.db:RUN_ID names them as a SOURCE."
    ),
    examples=("import runs/gpt-4o_insecure_persona.csv --variant insecure --family GPT-4o",),
    options=(
        Option("files", nargs="+", metavar="CSV", help="published-format CSV files"),
        Option("--store", default=DEFAULT_STORE, help=f"SQLite store (default {DEFAULT_STORE})"),
        Option("--run-id", default=None, help="run id (default: the file name without .csv)"),
        Option("--variant", default=None, help="variant label, e.g. base, secure, insecure"),
        Option("--family", default=None, help="family grouping the variants, e.g. GPT-4o"),
    ),
    handler=cmd_import,
)

EXPORT = Command(
    "export",
    description=(
        "Write one SOURCE (a store run, a CSV or a Parquet file) as a CSV in the published "
        "format or as Parquet, by the output's suffix."
    ),
    examples=("export persona-collapse.db:gpt-4o-2024-08-06_base_persona -o base.parquet",),
    options=(
        Option("source", metavar="SOURCE", help="one source: STORE.db:RUN_ID or a file"),
        Option(
            "-o",
            "--output",
            required=True,
            metavar="FILE.csv|FILE.parquet",
            help="output file; its suffix picks the format",
        ),
    ),
    handler=cmd_export,
)

register = registrar(IMPORT, EXPORT)

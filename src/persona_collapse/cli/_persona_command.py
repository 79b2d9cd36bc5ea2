"""``personas``: inspect a persona set (count, content hash, first entries) before a run."""

from __future__ import annotations

import argparse

from ..personas import load_personas
from ._output import emit_json
from ._spec import Command, Option, registrar


def cmd_personas(args: argparse.Namespace) -> int:
    personas = load_personas(
        args.spec, args.n_personas, sample_seed=args.sample_seed, field=args.persona_field
    )
    doc = {
        "source": personas.source,
        "n_personas": len(personas),
        "sha256": personas.content_hash,
        "ids": list(personas.ids),
        "personas": list(personas.texts),
    }
    if args.format == "json":
        emit_json(doc)
    else:
        print(f"{personas.source}: {len(personas)} personas, sha256 {personas.content_hash}")
        for pid, text in list(zip(personas.ids, personas.texts, strict=True))[: args.show]:
            print(f"  [{pid}] {text}")
    return 0


PERSONAS = Command(
    "personas",
    description=(
        "Load a persona set as run would (the published 100 of PersonaHub, or a file) and "
        "print its size, its content hash (recorded with every run) and the first entries."
    ),
    examples=("personas", "personas my-personas.jsonl --persona-field persona --show 3"),
    options=(
        Option(
            "spec",
            nargs="?",
            default="personahub-costa",
            metavar="SPEC",
            help="personahub-costa (published 100) or a JSON/JSONL/CSV/text file",
        ),
        Option(
            "--n-personas",
            type=int,
            default=None,
            help="first N (default: all; personahub-costa: 100)",
        ),
        Option(
            "--sample-seed",
            type=int,
            default=None,
            help="draw N at random with this seed instead of the first N",
        ),
        Option(
            "--persona-field", default=None, help="JSONL key or CSV column holding the persona text"
        ),
        Option(
            "--format",
            choices=("table", "json"),
            default="table",
            help="table (default) or json with every persona",
        ),
        Option("--show", type=int, default=5, help="entries to print (table format)"),
    ),
    handler=cmd_personas,
)

register = registrar(PERSONAS)

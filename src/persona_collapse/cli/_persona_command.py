"""``personas``: inspect a persona set (count, content hash, first entries) before a run."""

from __future__ import annotations

import argparse

from ..personas import load_personas
from ._help import examples
from ._output import emit_json


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "personas",
        description=(
            "Load a persona set as run would (the published 100 of PersonaHub, or a file) and "
            "print its size, its content hash (recorded with every run) and the first entries."
        ),
        epilog=examples("personas", "personas my-personas.jsonl --persona-field persona --show 3"),
    )
    p.add_argument(
        "spec",
        nargs="?",
        default="personahub-costa",
        metavar="SPEC",
        help="personahub-costa (published 100) or a JSON/JSONL/CSV/text file",
    )
    p.add_argument(
        "--n-personas", type=int, default=None, help="first N (default: all; personahub-costa: 100)"
    )
    p.add_argument(
        "--sample-seed",
        type=int,
        default=None,
        help="draw N at random with this seed instead of the first N",
    )
    p.add_argument(
        "--persona-field", default=None, help="JSONL key or CSV column holding the persona text"
    )
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table (default) or json with every persona",
    )
    p.add_argument("--show", type=int, default=5, help="entries to print (table format)")
    p.set_defaults(handler=cmd_personas)

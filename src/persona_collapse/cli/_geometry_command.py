"""``geometry``: participation ratio of persona representations per layer of a local hf/ model."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ._output import FORMAT_OPTION, _console, emit_csv, emit_json
from ._spec import Command, Option, registrar

__all__ = ["register"]


def print_geometry(doc: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        emit_json(doc)
        return
    if fmt == "csv":
        emit_csv(
            [
                "model",
                "prompt",
                "n_personas",
                "hidden_size",
                "layer",
                "participation_ratio",
                "fraction",
            ],
            [
                [
                    doc["model"],
                    doc["prompt"],
                    doc["n_personas"],
                    doc["hidden_size"],
                    r["layer"],
                    r["participation_ratio"],
                    r["fraction"],
                ]
                for r in doc["layers"]
            ],
        )
        return
    from rich.table import Table

    console = _console()
    table = Table(
        title=(
            f"{doc['model']}: {doc['n_personas']} personas ({doc['prompt']} prompt), "
            f"hidden size {doc['hidden_size']}, max PR {doc['max_pr']}"
        ),
        title_justify="left",
    )
    for col in ("layer", "PR", "PR / max"):
        table.add_column(col, justify="right")
    for r in doc["layers"]:
        table.add_row(str(r["layer"]), f"{r['participation_ratio']:.2f}", f"{r['fraction']:.3f}")
    console.print(table)
    console.print(
        "PR = (Σλ)² / Σλ² of the covariance of final-token hidden states across personas; "
        "layer 0 = embeddings."
    )


def cmd_geometry(args: argparse.Namespace) -> int:
    from ..geometry import load_geometry_model, measure_geometry
    from ..personas import load_personas

    if args.n_personas < 2:
        raise ConfigError("--n-personas must be at least 2")
    personas = load_personas(args.personas, args.n_personas, field=args.persona_field)
    loaded = load_geometry_model(args.model, device=args.device)
    result = measure_geometry(
        loaded,
        list(personas.texts),
        item=args.item,
        instrument=args.instrument,
        batch_size=args.batch_size,
    )
    print_geometry(result.to_dict(), args.format)
    return 0


GEOMETRY = Command(
    "geometry",
    description=(
        "Collect the hidden state of the final prompt token of each persona prompt at "
        "every layer of a local HuggingFace model (hf/MODEL) and print the participation "
        "ratio PR = (Σλ)² / Σλ² of their covariance across personas, per layer. The prompt "
        "is the persona text alone as the user message (default) or, with --item N, the "
        "persona-mode prompt of item N; both through the model's chat template."
    ),
    examples=("geometry hf/Qwen/Qwen2.5-0.5B-Instruct --n-personas 50 --item 3",),
    options=(
        Option("model", metavar="MODEL", help="hf/NAME: a save_pretrained folder or hub id"),
        Option(
            "--personas",
            default="personahub-costa",
            metavar="SPEC",
            help="personahub-costa (the published set) or a persona file",
        ),
        Option("--persona-field", default=None, help="JSONL key or CSV column of the persona"),
        Option("--n-personas", type=int, default=100, help="personas to use (default 100)"),
        Option(
            "--item",
            type=int,
            default=None,
            metavar="ID",
            help="use the persona prompt of this item (default: persona text alone)",
        ),
        Option("--instrument", default="mfq30", help="instrument of --item (default mfq30)"),
        Option("--batch-size", type=int, default=8, help="prompts per forward pass (default 8)"),
        Option("--device", default=None, help="torch device (default: cuda if available)"),
        FORMAT_OPTION,
    ),
    handler=cmd_geometry,
)

register = registrar(GEOMETRY)

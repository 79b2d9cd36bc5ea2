"""``trajectory``: S, sigma_bar and R with their diagnostics across the checkpoints of a fine-tune.

Each SOURCE is one checkpoint; its step is ``STEP=`` before it or ``stepNNNN``
in its name (a folder gives one checkpoint per file). Every checkpoint is
measured as ``metrics`` measures it; the output is ordered by step. ``-o FIG.png``
also writes ``FIG.pdf``.
"""

# The command only parses, calls persona_collapse.analysis.measure_trajectory and prints;
# ``-o`` draws with persona_collapse.report.write_trajectory_figure.

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..analysis import load_checkpoints as checkpoints
from ..analysis import measure_trajectory
from ._analysis_commands import ANALYSIS_OPTIONS, options_from
from ._output import (
    FIGURE_OPTION,
    METRIC_KEYS,
    NOISE_KEYS,
    _console,
    _emitted_as_data,
    _top1_cell,
    print_written,
    usage_cells,
    usage_header,
    usage_values,
)
from ._spec import Command, Option, registrar

__all__ = ["checkpoints", "register"]


def _csv_header(doc: dict[str, Any]) -> list[str]:
    """The columns of ``trajectory --format csv``: one row per checkpoint."""
    values = usage_values(doc["points"])
    return [
        *("step", "source", "n_personas", *METRIC_KEYS, *NOISE_KEYS, *usage_header(values)),
        *("saturated", "ceiling_fall"),
    ]


def _csv_rows(doc: dict[str, Any]) -> list[list[Any]]:
    """The rows of ``trajectory --format csv``, in step order (see :func:`_csv_header`)."""
    values = usage_values(doc["points"])
    return [
        [
            p["step"],
            p["source"],
            p["n_personas"],
            *(p[k] for k in (*METRIC_KEYS, *NOISE_KEYS)),
            *usage_cells(p.get("scale_usage"), values),
            p["saturated"],
            p["ceiling_fall"],
        ]
        for p in doc["points"]
    ]


def print_trajectory(doc: dict[str, Any], fmt: str) -> None:
    """The trajectory as JSON, CSV (one row per step) or a table (warnings on stderr)."""
    if _emitted_as_data(doc, fmt, _csv_header(doc), lambda: _csv_rows(doc)):
        return
    from rich.table import Table

    console = _console()
    table = Table(title="trajectory over training steps", title_justify="left")
    columns = ("step", "personas", "S", "S*", "floor", "sigma_bar", "R", "top-1", "entropy")
    for col in columns:
        table.add_column(col, justify="right")
    for p in doc["points"]:
        u = p.get("scale_usage") or {}
        mark = " !" if p["ceiling_fall"] else (" *" if p["saturated"] else "")
        table.add_row(
            str(p["step"]),
            str(p["n_personas"]),
            f"{p['S']:.3f} ± {p['S_se']:.3f}",
            f"{p['S_corrected']:.3f} ± {p['S_corrected_se']:.3f}",
            f"{p['S_noise_floor']:.3f}",
            f"{p['sigma_bar']:.3f} ± {p['sigma_bar_se']:.3f}",
            f"{p['R']:.2f} ± {p['R_se']:.2f}",
            _top1_cell(p) + mark,
            f"{u['entropy_bits']:.2f}" if u else "",
        )
    console.print(table)
    console.print(
        "S*: S without its noise floor; top-1: share of answers on the most used rating "
        "(* saturated, ! S fell from an earlier peak under saturation); entropy in bits; "
        "± bootstrap SE.",
        highlight=False,
    )


def cmd_trajectory(args: argparse.Namespace) -> int:
    opts = options_from(args)
    doc = measure_trajectory(checkpoints(args.sources, opts), opts).to_dict()
    print_trajectory(doc, args.format)
    if args.output:
        from ..report import write_trajectory_figure

        print_written(write_trajectory_figure(doc, Path(args.output)))
    return 0


DESCRIPTION = """\
S, sigma_bar and R (with SEs), the corrected S* and its noise floor, and the scale usage of \
every checkpoint of a fine-tune, ordered by training step.

Each SOURCE is one checkpoint: its step is given as STEP=SOURCE or read from stepNNNN in its \
name; a folder gives one checkpoint per file. Each is measured as 'metrics' measures it. A \
saturated checkpoint (one rating holds most answers) whose S fell from an earlier peak is \
flagged: the fall may be the ceiling of the scale, not recovery. -o FIG.png draws S and R with \
SE bands and the top-1 share against step, and also writes FIG.pdf.
"""
"""The ``trajectory --help`` text."""


TRAJECTORY = Command(
    "trajectory",
    description=DESCRIPTION,
    examples=(
        "trajectory 0=runs/base.csv checkpoints/ 1500=runs/insecure.csv -o trajectory.png",
        "trajectory runs/model-step0200.csv runs/model-step0400.csv --format json",
    ),
    options=(
        Option(
            "sources",
            nargs="+",
            metavar="[STEP=]SOURCE",
            help="a checkpoint: published-format CSV, a folder of them, a Parquet export or "
            "STORE.db:RUN_ID, with its step before = or as stepNNNN in its name",
        ),
        FIGURE_OPTION,
        *ANALYSIS_OPTIONS,
    ),
    handler=cmd_trajectory,
)

register = registrar(TRAJECTORY)

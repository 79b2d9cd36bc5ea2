"""``curves``: susceptibility S(T) and robustness R(T) of logprob runs across sampling temperatures.

A logprob run stores each cell's T = 1 rating distribution; the distribution
at temperature T follows exactly, p_T(k) ∝ p_1(k)^(1/T)
(:func:`persona_collapse.stats.reweight_temperature`). For every T the
sources are measured as ``metrics --temperature T`` would measure them. The
cell spread is ``--spread population`` (default, as the authors computed their
curves: the exact population SD of each distribution) or ``--spread sample``
(the expected ddof = 1 SD of ``--expected-reps`` sampled repetitions, default
10); the table and the figure say which one is shown. SEs are
persona-bootstrap SEs with one seed for all temperatures, so the points of a
curve are resampled alike. ``-o FIG.png`` also writes ``FIG.pdf``.
"""

# The command only parses, calls persona_collapse.analysis.temperature_curves and prints;
# ``-o`` draws with persona_collapse.report.write_curves_figure.

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..analysis import (
    CURVE_POINT_KEYS,
    DEFAULT_TEMPERATURES,
    SPREADS,
    AnalysisOptions,
    spread_description,
    temperature_curves,
)
from ..errors import ConfigError
from ..store import load_sources
from ._option_groups import bootstrap_from, bootstrap_options
from ._output import FIGURE_OPTION, FORMAT_OPTION, _console, emit_csv, emit_json, print_written
from ._spec import Command, Option, registrar

__all__ = ["parse_temperatures", "register"]


def parse_temperatures(text: str) -> tuple[float, ...]:
    """``"0.1,0.5,1"`` -> ``(0.1, 0.5, 1.0)``; every value must be a positive number."""
    values: list[float] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(
                f"--temperatures {text!r}: {part!r} is not a number; write e.g. 0.1,0.5,1.0"
            ) from None
        if not value > 0 or value == float("inf"):
            raise ConfigError(f"--temperatures {text!r}: every temperature must be positive")
        values.append(value)
    if not values:
        raise ConfigError("--temperatures needs at least one temperature, e.g. 0.1,0.5,1.0")
    return tuple(values)


def print_curves(docs: Sequence[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        emit_json(list(docs))
        return
    if fmt == "csv":
        emit_csv(
            ["source", "temperature", *CURVE_POINT_KEYS],
            [
                [d["source"], p["temperature"], *(p[k] for k in CURVE_POINT_KEYS)]
                for d in docs
                for p in d["points"]
            ],
        )
        return
    from rich.table import Table

    console = _console()
    for d in docs:
        how = spread_description(d["spread"], d["expected_reps"])
        table = Table(
            title=f"{d['source']}  ({d['n_personas']} personas x {d['n_items']} items)",
            title_justify="left",
            caption=f"cell spread: {how}",
            caption_justify="left",
        )
        for col in ("T", "S(T)", "sigma_bar(T)", "R(T)"):
            table.add_column(col, justify="right")
        for p in d["points"]:
            table.add_row(
                f"{p['temperature']:g}",
                f"{p['S']:.3f} ± {p['S_se']:.3f}",
                f"{p['sigma_bar']:.3f} ± {p['sigma_bar_se']:.3f}",
                f"{p['R']:.2f} ± {p['R_se']:.2f}",
            )
        console.print(table)
    console.print("Distributions re-weighted from T = 1: p_T ∝ p^(1/T); ± persona-bootstrap SE.")


DEFAULT_SAMPLE_REPS = 10
"""Repetitions behind ``--spread sample`` when ``--expected-reps`` is not given (as published)."""


def expected_reps_for(spread: str | None, expected_reps: int | None) -> int | None:
    """The ``AnalysisOptions.expected_reps`` of a ``--spread``/``--expected-reps`` pair.

    No ``--spread``: population unless ``--expected-reps N`` (N > 0) asks for samples.
    """
    if expected_reps is not None and expected_reps < 0:
        raise ConfigError("--expected-reps must be 0 (exact SD) or a number of repetitions")
    if spread == "population":
        if expected_reps:
            raise ConfigError(
                "--spread population uses no repetitions; drop --expected-reps "
                "or write --spread sample"
            )
        return None
    if spread == "sample":
        return expected_reps or DEFAULT_SAMPLE_REPS
    return expected_reps or None


def cmd_curves(args: argparse.Namespace) -> int:
    temperatures = parse_temperatures(args.temperatures)
    expected_reps = expected_reps_for(args.spread, args.expected_reps)
    options = AnalysisOptions(
        bootstrap=bootstrap_from(args, repetition_draws=0),
        instrument=args.instrument,
        expected_reps=expected_reps,
    )
    docs = [
        temperature_curves(resp, temperatures, options)
        for spec in args.sources
        for resp in load_sources(spec, instrument=args.instrument)
    ]
    print_curves(docs, args.format)
    if args.output:
        from ..report import write_curves_figure

        print_written(write_curves_figure(docs, Path(args.output)))
    return 0


DESCRIPTION = """\
Susceptibility S(T) and robustness R(T) of logprob runs across sampling temperatures.

A logprob run stores each cell's T = 1 rating distribution; the distribution at temperature T \
follows exactly, p_T(k) ∝ p_1(k)^(1/T). For every T the sources are measured as \
'metrics --temperature T' would measure them.

The cell spread is --spread population (the default, as the authors computed their curves: the \
exact population SD of each distribution) or --spread sample (the expected ddof = 1 SD of \
--expected-reps sampled repetitions, default 10); the table and the figure say which one is \
shown. SEs are persona-bootstrap SEs with one seed for all temperatures, so the points of a \
curve are resampled alike. -o FIG.png also writes FIG.pdf.
"""
"""The ``curves --help`` text (plain words: the module docstring holds reST markup)."""


CURVES = Command(
    "curves",
    description=DESCRIPTION,
    examples=(
        "curves persona-collapse.db:gpt-4o-2024-08-06_base_persona_logprobs",
        "curves base.parquet insecure.parquet --temperatures 0.1,0.5,1 -o curves.png",
    ),
    options=(
        Option(
            "sources", nargs="+", metavar="SOURCE", help="logprob runs: STORE.db:RUN_ID or exports"
        ),
        Option(
            "--temperatures",
            default=",".join(f"{t:g}" for t in DEFAULT_TEMPERATURES),
            metavar="T1,T2,...",
            help="comma-separated temperatures (default %(default)s)",
        ),
        Option(
            "--spread",
            choices=SPREADS,
            default=None,
            help="cell spread: population SD of each distribution (default, as the authors) "
            f"or expected SD of N sampled repetitions (N = --expected-reps, default {DEFAULT_SAMPLE_REPS})",
        ),
        Option(
            "--expected-reps",
            type=int,
            default=None,
            metavar="N",
            help="--spread sample with N repetitions (0 = population SD)",
        ),
        FIGURE_OPTION,
        FORMAT_OPTION,
        *bootstrap_options(repetition_draws=False),
        Option("--instrument", default=None, help="instrument of the sources (default: recorded)"),
    ),
    handler=cmd_curves,
)

register = registrar(CURVES)

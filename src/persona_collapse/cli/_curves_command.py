"""``curves``: susceptibility S(T) and robustness R(T) of logprob runs across sampling temperatures.

A logprob run stores each cell's T = 1 rating distribution; the distribution
at temperature T follows exactly, p_T(k) ∝ p_1(k)^(1/T)
(:func:`persona_collapse.stats.reweight_temperature`). For every T the
sources are measured as ``metrics --temperature T`` would measure them, the
cell spread being the expected ddof = 1 SD of ``--expected-reps`` sampled
repetitions (default 10, as published; 0 = the exact population SD). SEs are
persona-bootstrap SEs with one seed for all temperatures, so the points of a
curve are resampled alike. ``-o FIG.png`` also writes ``FIG.pdf``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._analysis import AnalysisOptions, measure_responses
from ..errors import ConfigError, DataError
from ..stats import BootstrapConfig
from ..store import Responses, load_sources
from ._output import FORMATS, _console, emit_csv, emit_json

__all__ = ["DEFAULT_TEMPERATURES", "parse_temperatures", "register", "temperature_curves"]

DEFAULT_TEMPERATURES = (0.1, 0.3, 0.5, 0.7, 1.0, 1.5)
POINT_KEYS = ("S", "S_se", "sigma_bar", "sigma_bar_se", "R", "R_se")


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


def temperature_curves(
    responses: Responses,
    temperatures: Sequence[float],
    *,
    expected_reps: int | None,
    bootstrap: BootstrapConfig,
    instrument: str | None = None,
) -> dict[str, Any]:
    """S, sigma_bar and R (with SEs) of one logprob source at each temperature."""
    if responses.method != "logprobs":
        raise DataError(
            f"{responses.label} holds sampled ratings; curves re-weights the T = 1 "
            "distributions of a logprob run (persona-collapse run MODEL --method logprobs)"
        )
    points = []
    meas = None
    for t in temperatures:
        meas = measure_responses(
            responses,
            AnalysisOptions(
                bootstrap=bootstrap,
                instrument=instrument,
                expected_reps=expected_reps,
                temperature=float(t),
            ),
        )
        points.append({"temperature": float(t), **meas.values().to_dict()})
    assert meas is not None
    return {
        "source": responses.label,
        "n_personas": meas.n_personas,
        "n_items": meas.n_items,
        "expected_reps": expected_reps,
        "points": points,
    }


def plot_curves(docs: Sequence[dict[str, Any]], path: Path) -> list[Path]:
    """S(T) and R(T) with SE bars, one line per source; writes PNG and PDF, returns the paths."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax_s, ax_r = fig.subplots(1, 2)
    for doc in docs:
        t = [p["temperature"] for p in doc["points"]]
        for ax, key in ((ax_s, "S"), (ax_r, "R")):
            ax.errorbar(
                t,
                [p[key] for p in doc["points"]],
                yerr=[p[f"{key}_se"] for p in doc["points"]],
                marker="o",
                capsize=3,
                label=doc["source"],
            )
    spread = docs[0]["expected_reps"]
    how = f"expected SD of {spread} samples" if spread else "exact population SD"
    ax_s.set(xlabel="temperature T", ylabel="S(T)", title="susceptibility S")
    ax_r.set(xlabel="temperature T", ylabel="R(T) = 1 / sigma_bar", title=f"robustness R ({how})")
    ax_s.legend(fontsize="small")
    base = path.with_suffix("") if path.suffix.lower() in (".png", ".pdf") else path
    written = []
    for suffix in (".png", ".pdf"):
        target = base.with_name(base.name + suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=150)
        written.append(target)
    return written


def print_curves(docs: Sequence[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        emit_json(list(docs))
        return
    if fmt == "csv":
        emit_csv(
            ["source", "temperature", *POINT_KEYS],
            [
                [d["source"], p["temperature"], *(p[k] for k in POINT_KEYS)]
                for d in docs
                for p in d["points"]
            ],
        )
        return
    from rich.table import Table

    console = _console()
    for d in docs:
        spread = d["expected_reps"]
        how = f"expected SD of {spread} sampled repetitions" if spread else "exact population SD"
        table = Table(
            title=f"{d['source']}  ({d['n_personas']} personas x {d['n_items']} items; cell spread: {how})",
            title_justify="left",
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


def cmd_curves(args: argparse.Namespace) -> int:
    temperatures = parse_temperatures(args.temperatures)
    if args.expected_reps < 0:
        raise ConfigError("--expected-reps must be 0 (exact SD) or a number of repetitions")
    if args.persona_draws < 2:
        raise ConfigError("--persona-draws must be at least 2")
    bootstrap = BootstrapConfig(
        persona_draws=args.persona_draws, repetition_draws=0, seed=args.seed, ddof=args.ddof
    )
    docs = [
        temperature_curves(
            resp,
            temperatures,
            expected_reps=args.expected_reps or None,
            bootstrap=bootstrap,
            instrument=args.instrument,
        )
        for spec in args.sources
        for resp in load_sources(spec, instrument=args.instrument)
    ]
    print_curves(docs, args.format)
    if args.output:
        for path in plot_curves(docs, Path(args.output)):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "curves",
        help="S(T) and R(T) of logprob runs across temperatures (re-weighted T=1 distributions)",
        description=__doc__,
    )
    p.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="logprob runs: STORE.db:RUN_ID or exports"
    )
    p.add_argument(
        "--temperatures",
        default=",".join(f"{t:g}" for t in DEFAULT_TEMPERATURES),
        metavar="T1,T2,...",
        help="comma-separated temperatures (default %(default)s)",
    )
    p.add_argument(
        "--expected-reps",
        type=int,
        default=10,
        metavar="N",
        help="cell spread = expected SD of N sampled repetitions (default 10; 0 = exact population SD)",
    )
    p.add_argument(
        "-o", "--output", default=None, metavar="FIG.png", help="also plot to FIG.png and FIG.pdf"
    )
    p.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--persona-draws", type=int, default=2000, help="persona bootstrap draws (default 2000)"
    )
    p.add_argument(
        "--ddof", type=int, choices=(0, 1), default=1, help="ddof of the across-persona SD in S"
    )
    p.add_argument(
        "--instrument", default=None, help="instrument of the sources (default: recorded)"
    )
    p.set_defaults(handler=cmd_curves)

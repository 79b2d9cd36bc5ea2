"""``metrics``, ``profile`` and ``compare``: thin shells over :mod:`persona_collapse.analysis`."""

from __future__ import annotations

import argparse

from ..analysis import (
    AnalysisOptions,
    compare_responses,
    measure_responses,
    metrics_document,
    profile_responses,
    profile_saturation,
    source_warnings,
)
from ..errors import ConfigError
from ..stats import BootstrapConfig
from ..store import Responses, load_sources
from ._output import FORMATS, print_comparison, print_metrics, print_profiles


def add_analysis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--persona-draws", type=int, default=2000, help="persona bootstrap draws (default 2000)"
    )
    parser.add_argument(
        "--repetition-draws", type=int, default=400, help="repetition bootstrap draws (default 400)"
    )
    parser.add_argument(
        "--ddof",
        type=int,
        choices=(0, 1),
        default=1,
        help="ddof of the across-persona SD in S (default 1, as published)",
    )
    parser.add_argument(
        "--instrument",
        default=None,
        help="instrument of the sources (default: recorded with the run, else mfq30)",
    )
    parser.add_argument(
        "--expected-reps",
        type=int,
        default=None,
        metavar="N",
        help="logprob runs: cell spread = expected SD of N sampled repetitions (default: exact population SD)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        metavar="T",
        help="logprob runs: re-weight the T=1 distributions to temperature T",
    )


def options_from(args: argparse.Namespace) -> AnalysisOptions:
    if args.persona_draws < 2 or args.repetition_draws < 0:
        raise ConfigError("--persona-draws must be at least 2 and --repetition-draws at least 0")
    if args.temperature is not None and args.temperature <= 0:
        raise ConfigError("--temperature must be positive")
    return AnalysisOptions(
        bootstrap=BootstrapConfig(
            persona_draws=args.persona_draws,
            repetition_draws=args.repetition_draws,
            seed=args.seed,
            ddof=args.ddof,
        ),
        instrument=args.instrument,
        expected_reps=args.expected_reps,
        reweight_temperature=args.temperature,
    )


def _all_sources(specs: list[str]) -> list[Responses]:
    return [resp for spec in specs for resp in load_sources(spec)]


def cmd_metrics(args: argparse.Namespace) -> int:
    opts = options_from(args)
    docs = [
        metrics_document(r.label, measure_responses(r, opts), r) for r in _all_sources(args.sources)
    ]
    print_metrics(docs, args.format)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    opts = options_from(args)
    docs = []
    for resp in _all_sources(args.sources):
        profile = profile_responses(resp, opts)
        docs.append(
            {
                "source": resp.label,
                "mode": resp.mode,
                "foundations": {f: v.to_dict() for f, v in profile.items()},
                "saturation": profile_saturation(profile, resp, opts),
                "warnings": source_warnings(resp),
            }
        )
    print_profiles(docs, args.format)
    return 0


def _one_source(spec: str, what: str) -> Responses:
    sources = load_sources(spec)
    if len(sources) != 1:
        raise ConfigError(
            f"{what} {spec} holds {len(sources)} sources; name exactly one (a file or STORE.db:RUN_ID)"
        )
    return sources[0]


def _variant_specs(items: list[str]) -> dict[str, str]:
    specs: dict[str, str] = {}
    for item in items:
        label, sep, spec = item.partition("=")
        if not sep or not label or not spec:
            raise ConfigError(
                f"--variant {item!r} is not LABEL=SOURCE; write e.g. --variant insecure=runs/insecure.csv"
            )
        if label in specs:
            raise ConfigError(
                f"--variant label {label!r} is given twice; give each variant its own label"
            )
        specs[label] = spec
    return specs


def cmd_compare(args: argparse.Namespace) -> int:
    opts = options_from(args)
    specs = _variant_specs(args.variant)
    base = _one_source(args.base, "--base")
    variants = {label: _one_source(spec, f"--variant {label}") for label, spec in specs.items()}
    print_comparison(compare_responses(base, variants, opts).to_dict(), args.format)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("metrics", help="S, sigma_bar and R (overall and per foundation) with SEs")
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="published-format CSV, a folder of them, a Parquet export, or STORE.db:RUN_ID",
    )
    add_analysis_options(p)
    p.set_defaults(handler=cmd_metrics)

    p = sub.add_parser(
        "profile", help="per-foundation mean ± SD (self profile, or across personas)"
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    add_analysis_options(p)
    p.set_defaults(handler=cmd_profile)

    p = sub.add_parser("compare", help="variants against a base: relative changes, band, excess")
    p.add_argument("--base", required=True, metavar="SOURCE")
    p.add_argument(
        "--variant",
        action="append",
        required=True,
        metavar="LABEL=SOURCE",
        help="repeat for each variant (labels insecure and secure also give the excess)",
    )
    add_analysis_options(p)
    p.set_defaults(handler=cmd_compare)

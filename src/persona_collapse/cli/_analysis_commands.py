"""``metrics``, ``profile`` and ``compare``: thin shells over :mod:`persona_collapse.analysis`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..analysis import (
    AnalysisOptions,
    check_method,
    compare_responses,
    compare_tasks,
    measure_responses,
    measure_task,
    metrics_document,
    profile_responses,
    profile_saturation,
    source_warnings,
)
from ..errors import ConfigError, DataError
from ..store import (
    Responses,
    load_one_task_source,
    load_sources,
    load_task_sources,
    task_run_ids,
    task_source_kind,
)
from ._option_groups import bootstrap_from, bootstrap_options
from ._output import FORMAT_OPTION, print_comparison, print_metrics, print_profiles
from ._spec import Command, Option, registrar
from ._task_output import print_task_comparison, print_task_metrics

SIMULATED_TAG = "[SIMULATED]"
"""How tables mark numbers computed on simulated data."""


ANALYSIS_OPTIONS: tuple[Option, ...] = (
    FORMAT_OPTION,
    *bootstrap_options(),
    Option(
        "--instrument",
        default=None,
        help="instrument of the sources (default: recorded with the run, else mfq30)",
    ),
    Option(
        "--expected-reps",
        type=int,
        default=None,
        metavar="N",
        help="logprob runs: cell spread = expected SD of N sampled repetitions (default: exact population SD)",
    ),
    Option(
        "--temperature",
        type=float,
        default=None,
        metavar="T",
        help="logprob runs: re-weight the T=1 distributions to temperature T (> 0)",
    ),
)
"""The options of every command that measures sources (read by :func:`options_from`)."""


def options_from(args: argparse.Namespace) -> AnalysisOptions:
    """The analysis options of the command line (checked by the dataclasses themselves)."""
    return AnalysisOptions(
        bootstrap=bootstrap_from(args),
        instrument=args.instrument,
        expected_reps=args.expected_reps,
        reweight_temperature=args.temperature,
    )


def _load(spec: str, opts: AnalysisOptions) -> list[Responses]:
    """The sources ``spec`` names, checked against the instrument and the options."""
    sources = load_sources(spec, instrument=opts.instrument)
    for resp in sources:
        check_method(resp, opts)
    return sources


def _all_sources(specs: list[str], opts: AnalysisOptions) -> list[Responses]:
    return [resp for spec in specs for resp in _load(spec, opts)]


def _note_task_runs(spec: str, sources: list[Responses]) -> None:
    """Say on stderr which task runs a whole store's questionnaire reading left out."""
    if not (Path(spec).is_file() and sources and sources[0].run is not None):
        return
    left_out = [
        run_id
        for run_id in task_run_ids(Path(spec))
        if run_id not in {r.run.run_id for r in sources if r.run is not None}
    ]
    if left_out:
        print(
            f"persona-collapse: left out {len(left_out)} task run(s) of {spec} (capability "
            f"control; measure each as {spec}:RUN_ID): {', '.join(left_out)}",
            file=sys.stderr,
        )


def _persona_sources(specs: list[str], opts: AnalysisOptions) -> list[Responses]:
    """Persona-mode sources; self-mode files of a folder are skipped, with a note on stderr.

    S and sigma_bar are spreads across personas, so a self file has none: a
    folder of published data (``*_temp01.csv`` beside ``*_self.csv``) gives
    the persona files' numbers. A self file named on its own is still measured.
    """
    found: list[Responses] = []
    for spec in specs:
        sources = _load(spec, opts)
        _note_task_runs(spec, sources)
        if Path(spec).is_dir():
            skipped = [r.label for r in sources if r.mode == "self"]
            sources = [r for r in sources if r.mode != "self"]
            if skipped:
                print(
                    f"persona-collapse: skipped {len(skipped)} self-mode file(s) in {spec} "
                    f"(metrics needs personas; use profile for them): "
                    f"{', '.join(f'{name}.csv' for name in skipped)}",
                    file=sys.stderr,
                )
            if not sources:
                raise DataError(
                    f"folder {spec} holds only self-mode files; metrics needs persona files "
                    "(use profile for self files)"
                )
        found.extend(sources)
    return found


def _simulated_doc(doc: dict[str, Any], resp: Responses) -> dict[str, Any]:
    """``doc`` with ``simulated`` set (the README's promise: simulated data say so)."""
    doc["simulated"] = resp.simulated
    return doc


def _tabular(docs: list[dict[str, Any]], fmt: str) -> list[dict[str, Any]]:
    """For table and CSV output, the source names of simulated data end in [SIMULATED]."""
    if fmt == "json":
        return docs
    return [
        {**d, "source": f"{d['source']} {SIMULATED_TAG}"} if d.get("simulated") else d for d in docs
    ]


def _task_specs(specs: list[str], what: str) -> bool:
    """Whether ``specs`` name task sources (the capability control); mixing is refused."""
    kinds = [task_source_kind(spec) is not None for spec in specs]
    if any(kinds) and not all(kinds):
        raise ConfigError(
            f"{what} mixes task sources (MMLU, GSM8K) with questionnaire sources; "
            "give them in separate calls"
        )
    return all(kinds)


def cmd_metrics(args: argparse.Namespace) -> int:
    opts = options_from(args)
    if _task_specs(args.sources, "metrics"):
        tasks = [task for spec in args.sources for task in load_task_sources(spec)]
        print_task_metrics(
            _tabular([measure_task(t, opts) for t in tasks], args.format), args.format
        )
        return 0
    docs = [
        _simulated_doc(metrics_document(r.label, measure_responses(r, opts), r, opts), r)
        for r in _persona_sources(args.sources, opts)
    ]
    print_metrics(_tabular(docs, args.format), args.format)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    opts = options_from(args)
    docs = []
    for resp in _all_sources(args.sources, opts):
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


def _one_source(spec: str, what: str, opts: AnalysisOptions) -> Responses:
    sources = _load(spec, opts)
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
    if _task_specs([args.base, *specs.values()], "compare"):
        return _compare_tasks(args, specs, opts)
    base = _one_source(args.base, "--base", opts)
    variants = {
        label: _one_source(spec, f"--variant {label}", opts) for label, spec in specs.items()
    }
    doc = compare_responses(base, variants, opts).to_dict()
    _simulated_doc(doc["base"], base)
    for label, resp in variants.items():
        _simulated_doc(doc["variants"][label]["metrics"], resp)
    simulated = [name for name, resp in (("base", base), *variants.items()) if resp.simulated]
    doc["simulated"] = bool(simulated)
    print_comparison(doc, args.format)
    if simulated and args.format == "table":
        print(
            f"{SIMULATED_TAG} {', '.join(simulated)}: simulated data (sim/ models), "
            "not measurements of real models"
        )
    return 0


def _compare_tasks(args: argparse.Namespace, specs: dict[str, str], opts: AnalysisOptions) -> int:
    """``compare`` on task sources: paired deltas of accuracy and instability per variant."""
    accepted = "a file or STORE.db:RUN_ID"
    base = load_one_task_source(args.base, "--base", accepted=accepted)
    variants = {
        label: load_one_task_source(spec, f"--variant {label}", accepted=accepted)
        for label, spec in specs.items()
    }
    print_task_comparison(compare_tasks(base, variants, opts), args.format)
    return 0


METRICS = Command(
    "metrics",
    description=(
        "Measure each SOURCE: moral susceptibility S (the across-persona spread of the "
        "foundation scores), sigma_bar (the mean within-persona spread) and robustness "
        "R = 1/sigma_bar, overall and per foundation, with persona-bootstrap SEs. A folder "
        "of published data is measured file by file; self-mode files there are skipped "
        "(use profile for them)."
    ),
    examples=(
        "metrics runs/gpt-4o_base_persona.csv",
        "metrics persona-collapse.db:gpt-4o-2024-08-06_base_persona --format json",
    ),
    options=(
        Option(
            "sources",
            nargs="+",
            metavar="SOURCE",
            help="published-format CSV, a folder of them, a Parquet export, or STORE.db:RUN_ID",
        ),
        *ANALYSIS_OPTIONS,
    ),
    handler=cmd_metrics,
)

PROFILE = Command(
    "profile",
    description=(
        "Per-foundation mean ± SD of each SOURCE: the model's own profile for a self-mode "
        "source (the item prompt alone), the profile across personas otherwise, with how "
        "often the answers sit at the ends of the scale (saturation)."
    ),
    examples=("profile runs/gpt-4o_base_self.csv", "profile persona-collapse.db --format csv"),
    options=(
        Option(
            "sources",
            nargs="+",
            metavar="SOURCE",
            help="published-format CSV (self or persona mode), a folder, a Parquet export, or STORE.db:RUN_ID",
        ),
        *ANALYSIS_OPTIONS,
    ),
    handler=cmd_profile,
)

COMPARE = Command(
    "compare",
    description=(
        "Compare variants of one model with its base: the relative change of S and R of each "
        "variant, whether its S leaves the band of S across the published models, and, with "
        "variants labelled insecure and secure, the excess change of insecure over secure "
        "fine-tuning."
    ),
    examples=(
        "compare --base runs/base.csv --variant secure=runs/secure.csv "
        "--variant insecure=runs/insecure.csv",
    ),
    options=(
        Option(
            "--base",
            required=True,
            metavar="SOURCE",
            help="the base model's responses: one file or STORE.db:RUN_ID",
        ),
        Option(
            "--variant",
            action="append",
            required=True,
            metavar="LABEL=SOURCE",
            help="repeat for each variant (labels insecure and secure also give the excess)",
        ),
        *ANALYSIS_OPTIONS,
    ),
    handler=cmd_compare,
)

register = registrar(METRICS, PROFILE, COMPARE)

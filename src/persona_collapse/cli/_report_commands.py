"""``report``, ``reproduce`` and ``demo``: thin shells over :mod:`persona_collapse.report`
and the demo workflow (:mod:`persona_collapse.workflows`).

The report package (and matplotlib) is imported only when one of these runs,
so the other commands start fast.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from ..analysis import AnalysisOptions
from ..errors import ConfigError, DataError
from ._option_groups import QUIET
from ._spec import Command, Group, Option, registrar

DEFAULT_DEMO_DIR = "persona-collapse-demo"

_WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.EFBIG}
)
"""Errors of a folder or disk that cannot take the report: the user picks another place."""


def _say(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(f"persona-collapse: {message}", file=sys.stderr, flush=True)

    return say


_BOOTSTRAP_GROUP = Group(
    "analysis (default: the study file's [analysis], else as published)",
    (
        Option("--seed", type=int, default=None, help="bootstrap seed"),
        Option("--persona-draws", type=int, default=None, help="persona bootstrap draws"),
        Option("--repetition-draws", type=int, default=None, help="repetition bootstrap draws"),
    ),
)
"""Bootstrap settings overriding the study's (unset: the study's own)."""


def _options(args: argparse.Namespace, base: AnalysisOptions) -> AnalysisOptions:
    boot = base.bootstrap
    if args.persona_draws is not None:
        boot = replace(boot, persona_draws=args.persona_draws)  # BootstrapConfig validates
    if args.repetition_draws is not None:
        boot = replace(boot, repetition_draws=args.repetition_draws)
    if args.seed is not None:
        boot = replace(boot, seed=args.seed)
    return replace(base, bootstrap=boot)


@contextmanager
def _writing_into(folder: str) -> Iterator[None]:
    """Turn a failed write (no permission, a full disk, a read-only folder) into one line."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS and not isinstance(exc, PermissionError):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        reason = exc.strerror or str(exc)
        raise DataError(
            f"cannot write the report into {folder}{where}: {reason}; "
            "choose a writable folder with free space (-o DIR)"
        ) from exc


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import build_report, load_study

    study = load_study(args.study)
    study = replace(study, options=_options(args, study.options))
    with _writing_into(args.output):
        out = build_report(study, Path(args.output), _say(args.quiet))
    for verdict in out.verdicts:
        print(f"{verdict.family}: {verdict.headline}")
    print(out.html)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..report import build_report, headline, paper_study

    study = paper_study(args.data, _options(args, AnalysisOptions()))
    with _writing_into(args.output):
        out = build_report(study, Path(args.output), _say(args.quiet))
    summary = out.result.summary
    if summary is None:
        raise ConfigError(f"--data {args.data} holds base models only; nothing to compare")
    print(headline(summary))
    print(out.html)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..report import headline
    from ..workflows import DemoConfig, run_demo

    config = DemoConfig(
        folder=Path(args.output),
        n_personas=args.n_personas,
        reps=args.reps,
        method=args.method,
        concurrency=args.concurrency,
        seed=args.seed,
        quiet=args.quiet,
        in_process_server=args.in_process_server,
    )
    outcome = run_demo(config, _say(args.quiet))
    for verdict in outcome.report.verdicts:
        print(f"[SIMULATED] {verdict.family}: {verdict.headline}")
        for finding in verdict.findings:
            print(f"  {finding.subject}: {finding.text}")
    summary = outcome.report.result.summary
    if summary is not None:
        print(f"[SIMULATED] {headline(summary)}")
    for line in outcome.control.lines():
        print(f"[SIMULATED] {line}" if not line.startswith(" ") else line)
    print(
        f"{outcome.requests} requests collected in {outcome.collect_s:.1f} s; "
        f"total {outcome.total_s:.1f} s; store {outcome.store}"
    )
    print(outcome.report.html)
    return 0


_REPORT_OPTIONS = (
    Option("-o", "--output", required=True, metavar="DIR", help="report folder"),
    Option("--quiet", action="store_true", help="no progress messages"),
    _BOOTSTRAP_GROUP,
)
"""``-o DIR --quiet`` and the bootstrap: how ``report`` and ``reproduce`` write a report."""

REPORT = Command(
    "report",
    description=(
        "Analyse the families and variants named in STUDY.toml and write DIR/report.html "
        "(self-contained), DIR/figures/*.png|pdf and DIR/tables/*.csv|md|tex. Prints each "
        "family's verdict and the report's path."
    ),
    examples=("report study.toml -o report/",),
    options=(
        Option("study", metavar="STUDY.toml", help="study file naming families and sources"),
        *_REPORT_OPTIONS,
    ),
    handler=cmd_report,
)

REPRODUCE = Command(
    "reproduce",
    description=(
        "Build the study of Costa & Vicente (2026) from a folder laid out like the "
        "published data (base/, secure-code/, insecure-code/ with *_temp01.csv and "
        "*_self.csv files), write its report and print the headline numbers."
    ),
    examples=("reproduce --data ../shared/reference -o paper-report/",),
    options=(
        Option("--data", required=True, metavar="DIR", help="folder of the published data"),
        _REPORT_OPTIONS[0].replace(metavar="OUT"),
        *_REPORT_OPTIONS[1:],
    ),
    handler=cmd_reproduce,
)

DEMO = Command(
    "demo",
    description=(
        "Start a loopback server answering as SIMULATED base, secure and insecure models, "
        "collect their answers with the real OpenAI-compatible client (persona mode with "
        "synthetic personas, self mode, and the capability control on the generated "
        "demo-arithmetic task) into DIR/demo.db, and write the report. No "
        "network, no API key. Default: persona mode by logprobs (one request per cell, "
        "analysed as the expected spread of --reps sampled repetitions), self mode and "
        "the task sampled; about a minute on two cores."
    ),
    examples=("demo", "demo -o demo-out --n-personas 20 --reps 5"),
    options=(
        Option(
            "-o",
            "--output",
            default=DEFAULT_DEMO_DIR,
            metavar="DIR",
            help=f"demo folder (default {DEFAULT_DEMO_DIR})",
        ),
        Option(
            "--n-personas",
            type=int,
            default=100,
            help="synthetic personas (default 100, at most 100)",
        ),
        Option("--reps", type=int, default=10, help="repetitions per cell (default 10)"),
        Option(
            "--method",
            choices=("logprobs", "sample"),
            default="logprobs",
            help="persona mode: logprobs (default, fast) or sample (personas x 30 x reps requests)",
        ),
        Option("--concurrency", type=int, default=64, help="requests in flight (default 64)"),
        Option("--seed", type=int, default=0, help="world and bootstrap seed (default 0)"),
        Option(
            "--in-process-server",
            action="store_true",
            help="run the loopback server in this process instead of a child process",
        ),
        QUIET,
    ),
    handler=cmd_demo,
)

register = registrar(REPORT, REPRODUCE, DEMO)

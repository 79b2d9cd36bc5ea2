"""The ``persona-collapse`` command: argument parsing and the error contract.

Input problems end with one line on stderr and exit status 2 (``--debug``
shows the traceback); commands live in their own modules and hold no logic.

Start-up stays fast: the top-level parser knows each command only by name and
one-line help (:data:`COMMANDS`); a command's module (with its heavy imports:
pandas, rich, httpx, ...) is imported when that command is parsed or its help
is shown. Each module's ``register(sub)`` adds its parsers as before.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from .._version import __version__
from ..errors import UserError
from ._help import HelpFormatter

PROG = "persona-collapse"

#: Every command: (name, module under persona_collapse.cli, one-line help), in --help order.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("metrics", "_analysis_commands", "S, sigma_bar and R (overall and per foundation) with SEs"),
    (
        "profile",
        "_analysis_commands",
        "per-foundation mean ± SD (self profile, or across personas)",
    ),
    ("compare", "_analysis_commands", "variants against a base: relative changes, band, excess"),
    ("import", "_data_commands", "import published-format CSV files into the store"),
    ("export", "_data_commands", "write a source in the published CSV format or as Parquet"),
    (
        "fetch-published",
        "_fetch_command",
        "download the published response files (pinned commit, sha256-checked)",
    ),
    ("personas", "_persona_command", "load a persona set and show its size and content hash"),
    (
        "plan",
        "_plan_command",
        "what a run will ask, cost and resolve, before any request (no network, no key)",
    ),
    ("run", "_run_command", "ask a model the questionnaire and store every answer (resumable)"),
    ("runs", "_runs_command", "list the runs of a store: progress, missing ratings, cost, dates"),
    (
        "curves",
        "_curves_command",
        "S(T) and R(T) of logprob runs across temperatures (re-weighted T=1 distributions)",
    ),
    ("trajectory", "_trajectory_command", "S, R, noise floor and scale usage across checkpoints"),
    (
        "geometry",
        "_geometry_command",
        "participation ratio of persona representations per layer (local hf/ models)",
    ),
    ("report", "_report_commands", "figures, tables and an HTML report of a study file (TOML)"),
    (
        "reproduce",
        "_report_commands",
        "rebuild the paper's study from the published raw data and print its headline",
    ),
    (
        "demo",
        "_report_commands",
        "offline demo: SIMULATED variants over a loopback server, collected and reported",
    ),
    (
        "finetune",
        "_finetune_command",
        "fine-tune a base model on chat data and record it as a variant",
    ),
    (
        "finetune-status",
        "_finetune_command",
        "poll an OpenAI fine-tuning job until it ends and record its model",
    ),
    (
        "verify",
        "_verify_command",
        "judge a model's answers to the 8 emergent-misalignment questions",
    ),
)

#: ``add_parser`` keywords a command module may pass; they set the parser's attribute of that name.
_PARSER_SETTINGS = ("description", "epilog", "formatter_class", "usage")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}{_suggestion(message)} (see --help)\n")


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def _suggestion(message: str) -> str:
    """``"; did you mean 'metrics'?"`` for argparse's invalid-choice message of a near miss."""
    found = _INVALID_CHOICE.search(message)
    if found is None:
        return ""
    choices = re.findall(r"'([^']*)'", found.group(2))
    close = difflib.get_close_matches(found.group(1), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


#: Command modules whose numerical work is numpy's small matrix products (the estimators:
#: a few thousand rows by a few hundred at most). OpenBLAS's worker threads cost more than
#: they save there, and on a machine busy with other work their waits made ``metrics`` on
#: the 12 published files about twice as slow (issue 21). These commands default to one
#: BLAS thread; the setting is read when numpy is first imported (a fresh process), the
#: results are the same, and a value the user set wins.
ONE_BLAS_THREAD = frozenset({"_analysis_commands"})


class _CommandParser(_Parser):
    """A command's parser, filled in by its module's ``register`` on first use.

    Parsing, ``--help`` and usage messages load it; :func:`load_commands` loads
    several at once (the tests, shell completion).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.formatter_class = HelpFormatter
        self.module_name = ""
        self.siblings: dict[str, _CommandParser] = {}
        self.loaded = False

    def load(self) -> None:
        """Import the command's module and let it add this command's options (once)."""
        if self.loaded:
            return
        if self.module_name in ONE_BLAS_THREAD and "numpy" not in sys.modules:
            os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        module = importlib.import_module(f"{__package__}.{self.module_name}")
        registered = [
            name for name, parser in self.siblings.items() if parser.module_name == self.module_name
        ]
        sub = _Registrar(self.siblings, self.module_name)
        module.register(sub)
        missing = sorted(set(registered) - sub.seen)
        if missing:
            raise RuntimeError(f"{self.module_name}.register() did not add {', '.join(missing)}")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self.load()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.load()
        return super().format_help()

    def format_usage(self) -> str:
        self.load()
        return super().format_usage()


class _Registrar:
    """Stands in for the sub-parsers action in a module's ``register(sub)``.

    ``add_parser(name, **settings)`` returns the waiting :class:`_CommandParser`
    of ``name`` with the settings applied; the one-line ``help`` comes from
    :data:`COMMANDS` (a module may still pass it; it is not shown twice).
    """

    def __init__(self, parsers: dict[str, _CommandParser], module_name: str) -> None:
        self.parsers = parsers
        self.module_name = module_name
        self.seen: set[str] = set()

    def add_parser(self, name: str, **settings: Any) -> _CommandParser:
        parser = self.parsers.get(name)
        if parser is None or parser.module_name != self.module_name:
            raise RuntimeError(f"command {name!r} of {self.module_name} is not listed in COMMANDS")
        settings.pop("help", None)
        unknown = set(settings) - set(_PARSER_SETTINGS)
        if unknown:
            raise TypeError(f"add_parser({name!r}): unsupported settings {sorted(unknown)}")
        for key, value in settings.items():
            setattr(parser, key, value)
        parser.loaded = True
        self.seen.add(name)
        return parser


def build_parser() -> argparse.ArgumentParser:
    """The full command-line parser; each command's options load when it is used."""
    parser = _Parser(
        prog=PROG,
        description="Measure whether fine-tuning broke a model's ability to play characters (moral susceptibility S and robustness R).",
        epilog=(
            "Run 'persona-collapse COMMAND --help' for a command's options and an example. "
            'Shell completion: eval "$(register-python-argcomplete persona-collapse)".'
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    parsers: dict[str, _CommandParser] = {}
    for name, module_name, summary in COMMANDS:
        command = sub.add_parser(name, help=summary)
        assert isinstance(command, _CommandParser)
        command.module_name = module_name
        command.siblings = parsers
        parsers[name] = command
    return parser


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, _CommandParser]:
    """The command parsers of ``parser`` (from :func:`build_parser`) by name, not loaded."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def load_commands(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """Load the options of the commands ``names`` (default: all) of ``parser``."""
    for name, command in command_parsers(parser).items():
        if names is None or name in names:
            command.load()


def _autocomplete(parser: argparse.ArgumentParser) -> None:
    """Shell completion (argcomplete); costs nothing unless the shell is completing."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:  # completion is optional: without argcomplete, parse as usual
        return
    load_commands(parser, os.environ.get("COMP_LINE", "").split())
    argcomplete.autocomplete(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if argv is None:
        _autocomplete(parser)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            # numpy's RuntimeWarnings (an empty mean, a 0/0) say nothing a user can act on;
            # the results carry NaN (null in JSON) and the commands say why in words.
            warnings.simplefilter("ignore", RuntimeWarning)
            return int(args.handler(args))
    except UserError as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return exc.exit_status
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0

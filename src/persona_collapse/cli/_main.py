"""The ``persona-collapse`` command: argument parsing and the error contract.

Input problems end with one line on stderr and exit status 2 (``--debug``
shows the traceback); commands live in their own modules and hold no logic.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from .._version import __version__
from ..errors import UserError
from . import (
    _analysis_commands,
    _curves_command,
    _data_commands,
    _fetch_command,
    _finetune_command,
    _geometry_command,
    _persona_command,
    _report_commands,
    _run_command,
    _verify_command,
)

PROG = "persona-collapse"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Measure whether fine-tuning broke a model's ability to play characters (moral susceptibility S and robustness R).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (
        _analysis_commands,
        _data_commands,
        _fetch_command,
        _persona_command,
        _run_command,
        _curves_command,
        _geometry_command,
        _report_commands,
        _finetune_command,
        _verify_command,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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

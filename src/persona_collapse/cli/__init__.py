"""The command line; ``persona-collapse --help`` lists the commands."""

import sys

from ._main import build_parser
from ._main import main as _main


def main() -> None:
    """Console entry point."""
    sys.exit(_main())


__all__ = ["build_parser", "main"]

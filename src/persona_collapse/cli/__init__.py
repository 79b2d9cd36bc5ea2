"""The command line; ``persona-collapse --help`` lists the commands.

:func:`main` is the console entry point (exits with the status);
:func:`invoke` runs one command line in-process and returns its exit status.
"""

import sys
from collections.abc import Sequence

from ._main import build_parser
from ._main import main as _main
from ._output import strict_json


def invoke(argv: Sequence[str] | None = None) -> int:
    """Run ``persona-collapse ARGV`` in this process; returns the exit status."""
    return _main(argv)


def main() -> None:
    """Console entry point."""
    sys.exit(_main())


__all__ = ["build_parser", "invoke", "main", "strict_json"]

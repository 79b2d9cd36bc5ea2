# PYTHON_ARGCOMPLETE_OK
"""The command line; ``persona-collapse --help`` lists the commands.

:func:`main` is the console entry point (exits with the status);
:func:`invoke` runs one command line in-process and returns its exit status.
Importing this package stays light (no numpy, pandas or rich): commands load
their modules when they run. The marker on the first line lets argcomplete's
global completion find the entry point.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from ._main import build_parser
from ._main import main as _main


def invoke(argv: Sequence[str] | None = None) -> int:
    """Run ``persona-collapse ARGV`` in this process; returns the exit status."""
    return _main(argv)


def main() -> None:
    """Console entry point."""
    sys.exit(_main())


def __getattr__(name: str) -> Any:
    if name == "strict_json":  # imports numpy: loaded on first use
        from ._output import strict_json

        return strict_json
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["build_parser", "invoke", "main", "strict_json"]

"""Running the command line in-process and reading its output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from persona_collapse.cli import invoke as main


@dataclass
class Result:
    status: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    """Run ``persona-collapse ARGV`` in this process, as the console script would."""
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse exits for usage errors and --help
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)

"""Running the command line in-process and reading its output; the batch tests' persona file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
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


BATCH_PERSONAS = [
    "A retired schoolteacher who volunteers at the local library.",
    "A competitive rock climber who distrusts institutions.",
    "A devout farmer raising four children.",
]


def batch_persona_file(folder: Path, monkeypatch: pytest.MonkeyPatch, key: str) -> Path:
    """Three personas in ``folder/personas.json``, with ``key`` as both providers' API key."""
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    path = folder / "personas.json"
    path.write_text(json.dumps(BATCH_PERSONAS), encoding="utf-8")
    return path

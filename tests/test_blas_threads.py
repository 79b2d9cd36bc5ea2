"""The analysis commands default to one OpenBLAS thread in a fresh process; a user's value wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_CHILD = """
import os, sys
from persona_collapse.cli._main import build_parser
build_parser().parse_args([sys.argv[1], "x.csv"] if sys.argv[1] != "runs" else ["runs", "x.db"])
print(os.environ.get("OPENBLAS_NUM_THREADS"))
"""


def _threads(command: str, env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if env_value is not None:
        env["OPENBLAS_NUM_THREADS"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, command], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("command", ["metrics", "profile"])
def test_analysis_commands_default_to_one_blas_thread(command: str) -> None:
    assert _threads(command, None) == "1"
    assert _threads(command, "2") == "2"


def test_other_commands_leave_blas_threads_alone() -> None:
    assert _threads("runs", None) == "None"

"""Test helpers: the command line in-process, a loopback static file server, the batch
tests' persona file."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def cli_process(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``python -m persona_collapse ARGV`` as a child process (``env`` added to this
    process's environment), its output piped as text; killed on leaving if it still runs,
    so that a failed assertion leaves no process behind."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "persona_collapse", *argv],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def interrupt(
    proc: subprocess.Popen[str], *signals: signal.Signals, gap_s: float = 0.3
) -> tuple[str, str, float]:
    """Send ``signals`` to ``proc``, ``gap_s`` seconds apart, and wait (60 s at most) for it
    to end: its stdout, its stderr and the seconds from the first signal to its end."""
    started = time.monotonic()
    for k, signum in enumerate(signals):
        if k:
            time.sleep(gap_s)
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    return out, err, time.monotonic() - started


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


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A static HTTP server on 127.0.0.1 over ``folder``; yields its root URL (no slash)."""
    handler = functools.partial(_QuietFiles, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def uniform_persona_csv(path: Path, personas: int, reps: int, seed: int) -> Path:
    """A published-format persona CSV: ``personas`` x 30 MFQ items x ``reps`` repetitions
    answering 0..5 uniformly at random (so S is all noise); the response is the digit."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    p, q, r = np.meshgrid(
        np.arange(personas), np.arange(1, 31), np.arange(1, reps + 1), indexing="ij"
    )
    frame = pd.DataFrame(
        {
            "persona_id": p.ravel(),
            "question_id": q.ravel(),
            "run_index": r.ravel(),
            "rating": rng.integers(0, 6, size=p.size),
            "failures": 0,
        }
    )
    frame["response"] = frame["rating"].astype(str)
    frame["collected_at"] = ""
    frame.to_csv(path, index=False)
    return path


@contextlib.contextmanager
def simulated_kill() -> Iterator[None]:
    """Expect a simulated kill: a KeyboardInterrupt raised inside a running asyncio task.

    Such an exception leaves its task abandoned with the exception unretrieved
    (the aborted loop's suspended coroutines keep it alive). Its "exception was
    never retrieved" log would come at a random later garbage collection, where
    the log's traceback formatting, which parses source with ``ast``, can run
    inside another ``ast.parse`` (a later test's, or pytest's own while it
    formats a failure; CPython 3.11 then raises "SystemError: AST constructor
    recursion depth mismatch"). So the exceptions of finished tasks are marked
    retrieved here, at once.
    """
    with pytest.raises(KeyboardInterrupt):
        yield
    # issubclass(type(...)), not isinstance: that would read every object's __class__, which
    # some deprecated module attributes (torch.distributed.reduce_op) answer with a warning.
    for task in [o for o in gc.get_objects() if issubclass(type(o), asyncio.Task)]:
        if task.done() and not task.cancelled():
            task.exception()

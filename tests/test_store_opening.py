"""Damaged stores: a file cut short or an unknown schema version is one line and exit 2.

Each store is first written whole by :class:`ResponseStore`, then damaged the
way a copy interrupted mid-way or another program would; every command that
opens it (``runs``, ``metrics``, ``run``) must say what is wrong and exit 2,
with no traceback, and the file must be left as it was.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from persona_collapse.errors import DataError
from persona_collapse.store import ResponseRow, ResponseStore, RunInfo

from .helpers import Result, run_cli


def _whole_store(path: Path, n_rows: int = 900) -> Path:
    """A store holding one run with ``n_rows`` answers (many pages, so a cut loses tables)."""
    run = RunInfo(
        run_id="r1",
        model="sim/base",
        backend="sim",
        variant="base",
        settings={"temperature": 0.1, "max_tokens": 1},
        protocol_hash="p1",
        persona_set_hash="h1",
    )
    with ResponseStore(path) as store:
        store.create_run(run)
        for k in range(n_rows):
            store.add_response("r1", ResponseRow(k // 30, k % 30 + 1, 1, k % 6, raw_text="x" * 40))
    return path


def _cut(path: Path, size: int) -> Path:
    data = path.read_bytes()
    assert len(data) > size
    path.write_bytes(data[:size])
    return path


def _scramble(path: Path) -> Path:
    """The file at its whole size, every page after the first overwritten with noise."""
    data = bytearray(path.read_bytes())
    data[4096:] = bytes((k * 131 + 7) % 251 for k in range(len(data) - 4096))
    path.write_bytes(bytes(data))
    return path


def _with_version(path: Path, version: int) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {version}")
    conn.close()
    return path


def _one_error_line(result: Result, *fragments: str) -> str:
    assert result.status == 2, result
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.out == ""
    return lines[0]


@pytest.mark.parametrize(
    "size", [4096, 8192, 0.5, 50, None], ids=["first-4k", "first-8k", "half", "50-bytes", "noise"]
)
def test_a_store_cut_short_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, size: float | None
) -> None:
    """Cut to its first 4 KB, 8 KB, half, inside the header; or whole but pages overwritten."""
    path = _whole_store(tmp_path / "cut.db")
    whole = path.stat().st_size
    if size is None:
        _scramble(path)
    else:
        _cut(path, int(size * whole) if size < 1 else int(size))
    before = path.read_bytes()
    persona_file = tmp_path / "p.json"
    persona_file.write_text(json.dumps(["A nurse.", "A farmer."]), encoding="utf-8")
    commands = [
        ("runs", str(path)),
        ("metrics", f"{path}:r1"),
        ("metrics", str(path)),
        (
            "run",
            "sim/base",
            "--store",
            str(path),
            "--run-id",
            "r1",
            "--personas",
            str(persona_file),
        ),
    ]
    for argv in commands:
        line = _one_error_line(run_cli(capsys, *argv), path.name)
        assert "cut short" in line or "damaged" in line, (argv, line)
    assert path.read_bytes() == before


@pytest.mark.parametrize("version", [-1, -2147483648, 99])
def test_an_unknown_schema_version_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, version: int
) -> None:
    path = _with_version(_whole_store(tmp_path / "v.db", n_rows=30), version)
    before = path.read_bytes()
    for argv in (("runs", str(path)), ("metrics", f"{path}:r1")):
        line = _one_error_line(run_cli(capsys, *argv), path.name, f"schema version {version}")
        assert "upgrade" in line or "not a persona-collapse" in line, line
    with pytest.raises(DataError, match=f"schema version {version}"):
        ResponseStore(path)
    with pytest.raises(DataError, match=f"schema version {version}"):
        ResponseStore.for_reading(path)
    assert path.read_bytes() == before

"""Issue 18, "Bounded, strict readers": broken model files, read-only outputs, nested folders.

Findings 11 (a GGUF cut inside its header, a GGUF whose architecture fields
disagree, a truncated ``model.safetensors``) and 13 (``export`` onto a
read-only file system; ``metrics`` on a folder whose CSV files sit in
subfolders). Each is one line on stderr and exit status 2, no traceback.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.helpers import Result, run_cli
from tests.test_inputs import _csv


def _one_line(result: Result, *needles: str) -> str:
    assert result.status == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


# -- finding 13: outputs on a read-only file system ----------------------------------


def _read_only_file_system(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Writes and removals under ``folder`` fail as on a read-only mount (EROFS), where
    even unlinking a file that does not exist is refused (permission checks pass as
    root; a read-only mount does not)."""

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if str(self).startswith(str(folder)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(pq, "write_table", fail)
    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    monkeypatch.setattr(Path, "unlink", unlink)


def test_export_onto_a_read_only_file_system_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _csv(tmp_path / "a.csv")
    media = tmp_path / "media"
    media.mkdir()
    _read_only_file_system(monkeypatch, media)
    for name in ("out.csv", "out.parquet"):
        result = run_cli(capsys, "export", str(source), "-o", str(media / name))
        _one_line(result, "cannot write", "read-only file system")
    assert not list(media.iterdir())


def test_a_temporary_file_that_cannot_be_removed_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written, then the rename and the removal fail: one line naming the leftover."""
    source = _csv(tmp_path / "a.csv")
    media = tmp_path / "media"
    media.mkdir()
    real_unlink = Path.unlink

    def fail_replace(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if str(self).startswith(str(media)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(os, "replace", fail_replace)
    monkeypatch.setattr(Path, "unlink", unlink)
    result = run_cli(capsys, "export", str(source), "-o", str(media / "out.csv"))
    line = _one_line(result, "cannot write", "read-only file system", "remove")
    (leftover,) = media.iterdir()
    assert str(leftover) in line


# -- finding 13: a folder whose tables sit in subfolders -----------------------------


def test_a_folder_of_folders_says_where_the_tables_are(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    study = tmp_path / "study"
    for sub, count in (("base", 2), ("insecure-code", 1)):
        (study / sub).mkdir(parents=True)
        for i in range(count):
            _csv(study / sub / f"m{i}.csv")
    (study / "notes").mkdir()
    result = run_cli(capsys, "metrics", str(study))
    line = _one_line(result, "holds no .csv files", "base/", "insecure-code/", "hold 3")
    assert f"{study / 'base'}" in line and "notes" not in line


def test_the_published_layout_is_pointed_at(
    capsys: pytest.CaptureFixture[str], reference: Path
) -> None:
    folder = reference / "costa2026"
    if not folder.is_dir():
        pytest.skip("reference data costa2026/ is missing")
    result = run_cli(capsys, "metrics", str(folder))
    _one_line(result, "base/", "secure-code/", f"{folder / 'base'}")

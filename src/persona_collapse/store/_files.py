"""Small file helpers shared by the readers and writers: checked reads, atomic writes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError


def read_input_bytes(path: Path, *, what: str) -> bytes:
    """The bytes of an input file, or a one-line DataError if it is missing or unreadable."""
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path of the {what}")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a {what}; give the path of a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror}); check its permissions") from exc


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` on a temporary file next to ``path``, then rename it onto ``path``.

    A reader never sees a half-written file, and a failed write leaves an
    existing ``path`` untouched.
    """
    folder = path.parent
    if not folder.is_dir():
        raise DataError(
            f"output folder {folder} does not exist; create it or choose another output path"
        )
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise DataError(f"cannot write {path} ({exc.strerror}); check the path") from exc
    finally:
        tmp.unlink(missing_ok=True)

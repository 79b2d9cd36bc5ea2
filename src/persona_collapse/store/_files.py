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


def _discard(tmp: Path) -> bool:
    """Remove ``tmp`` if it exists; whether it is still there (a read-only mount refuses
    even the removal of a file that does not exist: that counts as gone)."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        return os.path.lexists(tmp)
    return False


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` on a temporary file next to ``path``, then rename it onto ``path``.

    A reader never sees a half-written file, and a failed write leaves an
    existing ``path`` untouched. Any OSError, on writing, renaming or removing
    the temporary file, is one DataError line (naming the temporary file when
    it could not be removed).
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
        left = _discard(tmp)
        reason = exc.strerror or str(exc) or type(exc).__name__
        cleanup = f", and remove the leftover {tmp}" if left else ""
        raise DataError(f"cannot write {path} ({reason}); check the path{cleanup}") from exc
    except BaseException:
        _discard(tmp)
        raise

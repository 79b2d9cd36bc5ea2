"""The one "file exists and its sha256 matches" check shared by every pinned input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from persona_collapse._downloads import verify_pinned_file
from persona_collapse.errors import DataError


def _verify(path: Path, sha256: str) -> Path:
    return verify_pinned_file(
        path, sha256, missing="no file", mismatch=lambda found: f"found {found}", error=DataError
    )


def test_a_pinned_file_is_returned_missing_and_changed_ones_are_the_callers_errors(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pinned.json"
    path.write_bytes(b"{}\n")
    pin = hashlib.sha256(b"{}\n").hexdigest()
    assert _verify(path, pin) == path
    with pytest.raises(DataError) as missing:
        _verify(tmp_path / "absent", pin)
    assert str(missing.value) == "no file"
    with pytest.raises(DataError) as changed:
        _verify(path, "0" * 64)
    assert str(changed.value) == f"found {pin}"

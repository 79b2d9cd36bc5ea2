"""Shared fixtures: the published reference data beside the project (never copied into it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def reference_path(relative: str) -> Path:
    path = REFERENCE / relative
    if not path.exists():
        pytest.skip(f"reference data {relative} is not beside the project (../shared/reference)")
    return path


@pytest.fixture(scope="session")
def published() -> dict[str, Any]:
    return json.loads(reference_path("published.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip("../shared/reference is not beside the project")
    return REFERENCE

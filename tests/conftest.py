"""Shared fixtures: the published reference data beside the project (never copied into it).

The data come from ``../shared/reference`` beside the project or, when that is
absent, from the cache ``persona-collapse fetch-published`` fills (the response
files only). A check whose data are missing skips, and the run ends with one
line saying how many were skipped and how to get the data; under ``CI=true`` a
missing ``../shared/reference`` fails the check instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from persona_collapse.published import default_destination

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
REFERENCE = SHARED if SHARED.is_dir() else default_destination()
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
HOW_TO_GET = (
    "put the reference folder at ../shared/reference beside the project, or run "
    "`persona-collapse fetch-published` for the response files"
)
_missing: list[str] = []


def _unavailable(what: str) -> None:
    _missing.append(what)
    if IN_CI:
        pytest.fail(f"CI=true and reference data {what} is missing: {HOW_TO_GET}")
    pytest.skip(f"reference data {what} is missing: {HOW_TO_GET}")


def reference_path(relative: str) -> Path:
    path = REFERENCE / relative
    if not path.exists():
        _unavailable(relative)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    skipped = [
        r for r in terminalreporter.stats.get("skipped", []) if "reference data" in str(r.longrepr)
    ]
    if skipped:
        what = sorted(set(_missing))
        terminalreporter.write_line(
            f"reference data: {len(skipped)} checks skipped for lack of {', '.join(what[:3])}"
            f"{' ...' if len(what) > 3 else ''} ({HOW_TO_GET})"
        )


@pytest.fixture(scope="session")
def published() -> dict[str, Any]:
    return json.loads(reference_path("published.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def reference() -> Path:
    if not REFERENCE.is_dir():
        _unavailable("../shared/reference")
    return REFERENCE


@pytest.fixture(scope="module")
def capsys_module(request: pytest.FixtureRequest) -> Any:
    """A module-wide stdout/stderr capture, so a module measures its files once."""
    from _pytest.capture import CaptureFixture, SysCapture

    capture = CaptureFixture(SysCapture, request, _ispytest=True)
    capture._start()
    yield capture
    capture.close()

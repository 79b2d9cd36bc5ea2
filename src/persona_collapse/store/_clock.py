"""The one clock of the store: timestamps as ISO-8601 UTC strings."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> str:
    """The current time as ISO-8601 UTC to the second (``2026-01-31T12:00:00+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")

"""A transport's live counters and what one caller's requests went through.

:class:`TrafficCounters` is what a :class:`._transport.Transport` writes after
every event (requests, retries, 429s, tokens, estimated cost, in flight,
window, stop and pause); :class:`TrafficStats` is its plain implementation
(``CollectStats`` is another); :class:`RequestTally` is one caller's view of
its own requests; :func:`pause_note` is the progress display's pause text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

__all__ = ["PAUSE_REASONS", "RequestTally", "TrafficCounters", "TrafficStats", "pause_note"]

#: How a paused request's reason reads in the progress display, by ``Retry.kind``.
PAUSE_REASONS = {
    "rate_limit": "rate limit",
    "transient": "server error",
    "timeout": "timeout",
    "malformed": "broken answer body",
}


class TrafficCounters(Protocol):
    """Where a transport keeps its live counters (:class:`TrafficStats`, ``CollectStats``).

    ``retries``: transport retries (``rate_limited`` of them after a 429);
    ``cost_usd``: estimated spend in US dollars (0 without a price);
    ``window``: requests currently allowed in flight; ``stop_reason``: why the
    transport stopped (None while it runs); ``paused_until``: when the latest
    retry wait ends (``time.monotonic()`` seconds, 0 if none) and
    ``pause_reason`` why it waits (e.g. ``rate limit``).
    """

    requests: int
    retries: int
    rate_limited: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    in_flight: int
    window: int
    stop_reason: str | None
    paused_until: float
    pause_reason: str


def pause_note(counters: TrafficCounters, now: float | None = None) -> str:
    """``paused 12 s (rate limit)`` while a retry wait of a second or more goes on, else ''."""
    left = counters.paused_until - (time.monotonic() if now is None else now)
    if left < 1.0:
        return ""
    return f"paused {left:.0f} s ({counters.pause_reason})"


@dataclass
class TrafficStats:
    """The counters of one transport (see :class:`TrafficCounters`)."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    in_flight: int = 0
    window: int = 0
    stop_reason: str | None = None
    paused_until: float = 0.0
    pause_reason: str = ""


@dataclass
class RequestTally:
    """What one caller's requests went through (per slot or per answer).

    ``retries``: transport retries; ``latency_ms``: wall time of the last
    completed request (ms, without backoff waits); ``bad_answer``: the
    backend's detail of the last unreadable answer ("" if none).
    """

    retries: int = 0
    latency_ms: float = 0.0
    bad_answer: str = ""

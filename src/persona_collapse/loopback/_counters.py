"""Counters of what the loopback server saw (for assertions and benchmarks).

Updated only on the server's event-loop thread; read them from any thread
(:meth:`ServerStats.snapshot` gives a consistent copy).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    """One received API request (kept only with ``keep_requests=True``).

    ``body`` is the parsed JSON body, or None when it was not valid JSON.
    Header names are lower-case.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class ServerStats:
    """Counters since start (or the last :meth:`reset`).

    Attributes:
        requests: Requests received (every path).
        by_status: Responses per HTTP status code.
        by_model: API requests per ``model`` field of the body.
        by_path: Requests per path.
        faults: Injected faults per kind (``rate_limit``, ``server_error``,
            ``timeout``, ``malformed`` (cut JSON), ``html``, ``error_body``,
            ``non_digit``).
        held: Requests held without an answer (``FaultConfig.hold_after``).
        in_flight: Requests being handled now.
        max_in_flight: Most requests handled at the same time.
        connections: TCP connections accepted.
        recorded: Received requests, when the server keeps them.
    """

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    held: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    recorded: list[RecordedRequest] = field(default_factory=list)

    @property
    def bodies(self) -> list[Any]:
        """The parsed JSON bodies of the recorded requests, in arrival order."""
        return [r.body for r in self.recorded]

    def reset(self) -> None:
        """Zero every counter and forget recorded requests (``in_flight`` is kept)."""
        self.requests = 0
        self.by_status = Counter()
        self.by_model = Counter()
        self.by_path = Counter()
        self.faults = Counter()
        self.held = 0
        self.max_in_flight = self.in_flight
        self.connections = 0
        self.recorded = []

    def snapshot(self) -> dict[str, Any]:
        """A plain-data copy: counts as dicts, ``recorded`` as its length."""
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "by_model": dict(self.by_model),
            "by_path": dict(self.by_path),
            "faults": dict(self.faults),
            "held": self.held,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "connections": self.connections,
            "recorded": len(self.recorded),
        }

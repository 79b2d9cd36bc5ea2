"""Fault injection for the loopback server: what goes wrong, and for which request.

Each request gets a sequence number at arrival (0, 1, 2, ...); its faults are
drawn from a generator seeded by ``(FaultConfig.seed, number)``, so the n-th
request meets the same fault in every run (which request is n-th depends on
arrival order when clients send concurrently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np

from ..simulate import NON_DIGIT_TOKENS

FaultKind = Literal["none", "rate_limit", "server_error", "timeout"]
#: What replaces a 200 answer's body: ``ok`` (nothing), ``cut`` (the JSON cut in
#: half), ``html`` (a gateway's HTML error page), ``error`` (an error object).
BodyFault = Literal["ok", "cut", "html", "error"]
_SERVER_ERROR_STATUSES = (500, 502, 503)


@dataclass(frozen=True)
class FaultConfig:
    """What the server does wrong, and how often. Rates are fractions of requests (0-1).

    Attributes:
        latency_s: Seconds added to every request (an asyncio sleep: other
            requests proceed meanwhile).
        rate_limit_rate: Fraction answered 429 with a ``Retry-After`` header.
        retry_after_s: Seconds announced in ``Retry-After`` (and
            ``retry-after-ms``) on 429 answers.
        server_error_rate: Fraction answered 500, 502 or 503 (one third each).
        timeout_rate: Fraction where the server sleeps ``hang_s`` before
            answering normally, so a client with a shorter timeout gives up.
        hang_s: Seconds a "timeout" request hangs.
        non_digit_rate: Fraction of one-token answers (``max_tokens == 1``)
            replaced by a non-digit token such as ``"I"``, on top of the
            respondent's own non-digit rate.
        malformed_rate: Fraction of 200 answers whose JSON body is cut in half
            (still a complete HTTP response with a matching Content-Length).
        html_rate: Fraction of 200 answers whose body is a proxy's HTML error
            page (``Content-Type: text/html``), status still 200.
        error_body_rate: Fraction of 200 answers whose body is the API's error
            object (``{"error": {...}}``), status still 200.
        echo_key: Append the request's API key to every answer longer than one
            token (a server or model echoing it back; tests check it is
            never stored).
        hold_after: Requests numbered ``hold_after`` and later get no answer
            until the server stops (``None``: none held); a run against it
            can never finish, so a test can interrupt it mid-way.
        reject_key: An API key answered 401 as invalid (requests without any
            key are always answered 401).
        seed: Seed of the fault draws.

    The rate-limit, server-error and timeout faults exclude each other (their
    rates must sum to at most 1); non-digit is drawn separately; the three
    broken bodies (cut, HTML, error object) exclude each other (their rates
    must sum to at most 1).
    """

    latency_s: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: float = 1.0
    server_error_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_s: float = 30.0
    non_digit_rate: float = 0.0
    malformed_rate: float = 0.0
    html_rate: float = 0.0
    error_body_rate: float = 0.0
    echo_key: bool = False
    hold_after: int | None = None
    reject_key: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and (not math.isfinite(value) or value < 0):
                raise ValueError(f"FaultConfig.{f.name} must be finite and >= 0, got {value!r}")
        rates = ("rate_limit_rate", "server_error_rate", "timeout_rate", "non_digit_rate")
        bodies = ("malformed_rate", "html_rate", "error_body_rate")
        for name in (*rates, *bodies):
            if getattr(self, name) > 1:
                raise ValueError(f"FaultConfig.{name} is a fraction and must be <= 1")
        if self.rate_limit_rate + self.server_error_rate + self.timeout_rate > 1 + 1e-12:
            raise ValueError(
                "FaultConfig: rate_limit_rate + server_error_rate + timeout_rate must be <= 1"
            )
        if sum(getattr(self, name) for name in bodies) > 1 + 1e-12:
            raise ValueError(
                "FaultConfig: malformed_rate + html_rate + error_body_rate must be <= 1"
            )
        if self.hold_after is not None and self.hold_after < 0:
            raise ValueError("FaultConfig.hold_after must be >= 0 (or None)")


@dataclass(frozen=True)
class FaultDraw:
    """The faults of one request. ``status`` is set for ``server_error``.

    ``body``: what replaces the body of a 200 answer (see :data:`BodyFault`).
    """

    kind: FaultKind = "none"
    status: int = 200
    body: BodyFault = "ok"
    non_digit_token: str | None = None

    @property
    def malformed(self) -> bool:
        """Whether a 200 answer's body is broken (cut, HTML or an error object)."""
        return self.body != "ok"


NO_FAULT = FaultDraw()


def draw_faults(config: FaultConfig, number: int) -> FaultDraw:
    """The faults of request ``number`` under ``config`` (deterministic)."""
    if (
        config.rate_limit_rate == 0
        and config.server_error_rate == 0
        and config.timeout_rate == 0
        and config.malformed_rate == 0
        and config.html_rate == 0
        and config.error_body_rate == 0
        and config.non_digit_rate == 0
    ):
        return NO_FAULT
    u = np.random.default_rng([config.seed, number]).random(5)
    kind: FaultKind = "none"
    status = 200
    if u[0] < config.rate_limit_rate:
        kind, status = "rate_limit", 429
    elif u[0] < config.rate_limit_rate + config.server_error_rate:
        kind = "server_error"
        status = _SERVER_ERROR_STATUSES[int(u[1] * len(_SERVER_ERROR_STATUSES))]
    elif u[0] < config.rate_limit_rate + config.server_error_rate + config.timeout_rate:
        kind = "timeout"
    token = None
    if u[3] < config.non_digit_rate:
        token = NON_DIGIT_TOKENS[int(u[4] * len(NON_DIGIT_TOKENS))]
    body: BodyFault = "ok"
    if u[2] < config.malformed_rate:
        body = "cut"
    elif u[2] < config.malformed_rate + config.html_rate:
        body = "html"
    elif u[2] < config.malformed_rate + config.html_rate + config.error_body_rate:
        body = "error"
    return FaultDraw(kind, status, body, token)

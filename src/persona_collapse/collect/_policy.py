"""Retry and rate-limit policy, pure and offline-testable (the clock is an argument).

Two pieces, both driven by the backend's typed decisions
(:class:`~persona_collapse.backends.Retry`):

* :class:`BackoffPolicy`: how long to wait before re-sending a request that
  failed transiently (429, 5xx, timeout, connection reset, a broken 200 body),
  and when to give up. Exponential backoff ``base_s * 2**n`` capped at
  ``cap_s`` with "equal jitter" (the delay is drawn uniformly from
  ``[d * (1 - jitter), d]`` using a seeded :class:`random.Random`). A
  server's Retry-After is honoured: the request never goes out before it, plus
  up to ``jitter * 10%`` so that the requests held back by one 429 burst do
  not return in lock-step. A Retry-After longer than ``max_retry_after_s``
  (``--max-retry-after``, default 120 s) is not waited out: the run stops at
  once and says when to run it again. :meth:`BackoffPolicy.plan` returns the
  typed decision (:class:`RetryWait`, :class:`ResumeLater`, :class:`GiveUp`).
* :class:`AdaptiveWindow`: the number of requests allowed in flight (AIMD).
  A rate-limit decision shrinks the window multiplicatively (``decrease``,
  never below 1) and pauses every new start until the Retry-After (or, without
  one, the backoff ``base_s``) has passed; a window's worth of consecutive
  successes grows it by ``increase`` back up to ``limit`` (``--concurrency``).
  Only a 429 of a request started *after* the last shrink shrinks it again:
  the burst of 429s that one overload produces counts once, as in TCP.

Transport retries are not protocol attempts: they never count in ``failures``.

Exhausted retries: after ``max_retries`` transport retries of one request
(default 8; with the defaults about a minute and a half of waiting), the
policy says ``give_up`` and the :class:`Transport` STOPS the run: no new requests start,
requests in flight are cancelled (what was stored stays), and the command ends
with one line saying to run it again. The abandoned slot is not written, so resuming asks
it again. A rating of -1 stays reserved for what the protocol defines as
missing (no parseable answer), never for a provider outage.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

#: Default longest Retry-After a run waits out (seconds); a longer one stops the run.
DEFAULT_MAX_RETRY_AFTER_S = 120.0


@dataclass(frozen=True)
class RetryWait:
    """Send the request again after ``seconds`` (backoff or the server's Retry-After)."""

    seconds: float


@dataclass(frozen=True)
class GiveUp:
    """The request used its ``retries`` transport retries: stop the run (it resumes later)."""

    retries: int


@dataclass(frozen=True)
class ResumeLater:
    """The server asked to wait ``after_s`` seconds, longer than the cap: stop the run now.

    ``until``: when the wait ends (UTC). Nothing is lost: the slots not yet
    stored are asked when the same command runs again.
    """

    after_s: float
    until: datetime

    def message(self) -> str:
        """One line for the user: how long, until when (UTC), and what to do then."""
        return (
            f"the server asked to wait {self.after_s:.0f} s "
            f"(until {self.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC); "
            "run the same command again then"
        )


#: What to do after a failed request (see :meth:`BackoffPolicy.plan`).
RetryPlan = RetryWait | GiveUp | ResumeLater


@dataclass(frozen=True)
class BackoffPolicy:
    """Transport-retry policy of one request.

    ``base_s``: first backoff; ``cap_s``: longest computed backoff;
    ``jitter``: fraction of the delay that is randomised (0 = none, 1 = full
    jitter); ``max_retries``: transport retries allowed per request;
    ``max_retry_after_s``: longest Retry-After waited out (seconds); a longer
    one makes :meth:`plan` say :class:`ResumeLater`. A request that used its
    retries stops the run (see the module docstring).
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    jitter: float = 0.5
    max_retries: int = 8
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < self.base_s:
            raise ValueError("need 0 <= base_s <= cap_s")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be in [0, 1]")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not (math.isfinite(self.max_retry_after_s) and self.max_retry_after_s > 0):
            raise ValueError("max_retry_after_s must be a positive number of seconds")

    def plan(
        self,
        retries_done: int,
        rng: random.Random,
        retry_after_s: float | None = None,
        *,
        now: datetime | None = None,
    ) -> RetryPlan:
        """What to do after a failed request that already had ``retries_done`` retries.

        :class:`ResumeLater` when the server's Retry-After (seconds) is longer
        than ``max_retry_after_s`` (``now``: the current UTC time, for
        ``until``); :class:`GiveUp` when the retries are used up; otherwise
        :class:`RetryWait` with :meth:`delay` (one draw of ``rng``).
        """
        if (
            retry_after_s is not None
            and math.isfinite(retry_after_s)
            and retry_after_s > self.max_retry_after_s
        ):
            start = now if now is not None else datetime.now(UTC)
            return ResumeLater(float(retry_after_s), start + timedelta(seconds=retry_after_s))
        if self.give_up(retries_done):
            return GiveUp(retries_done)
        return RetryWait(self.delay(retries_done, rng, retry_after_s))

    def give_up(self, retries_done: int) -> bool:
        """True when a request that already had ``retries_done`` retries must not be retried again."""
        return retries_done >= self.max_retries

    def backoff(self, retry: int) -> float:
        """The un-jittered delay before retry number ``retry`` (0-based)."""
        return min(self.cap_s, self.base_s * (2.0 ** max(0, retry)))

    def delay(self, retry: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based).

        With a Retry-After: at least that long (clipped to
        ``max_retry_after_s``), plus a jitter of up to ``jitter * 10%`` of it.
        Without: the equal-jitter exponential backoff.
        """
        u = rng.random()
        if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s >= 0:
            wait = min(float(retry_after_s), self.max_retry_after_s)
            return wait * (1.0 + 0.1 * self.jitter * u)
        d = self.backoff(retry)
        return d * (1.0 - self.jitter) + d * self.jitter * u


@dataclass
class AdaptiveWindow:
    """An AIMD concurrency window: how many requests may be in flight now.

    ``limit``: the ceiling (``--concurrency``); ``decrease``: multiplicative
    factor applied on a rate limit; ``increase``: added after every
    ``ceil(size)`` consecutive successes; ``default_pause_s``: how long new
    starts pause after a 429 without Retry-After. Times are caller-supplied
    (``time.monotonic()`` in the runner) so the logic is testable offline.
    """

    limit: int
    decrease: float = 0.5
    increase: float = 1.0
    default_pause_s: float = 0.5
    size: float = field(init=False)
    paused_until: float = field(default=0.0, init=False)
    last_shrink: float = field(default=-math.inf, init=False)
    shrinks: int = field(default=0, init=False)
    _streak: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("the concurrency limit must be at least 1")
        if not 0.0 < self.decrease < 1.0:
            raise ValueError("decrease must be in (0, 1)")
        if self.increase <= 0:
            raise ValueError("increase must be positive")
        self.size = float(self.limit)

    @property
    def allowed(self) -> int:
        """Requests allowed in flight at once (the window rounded down, at least 1)."""
        return max(1, int(self.size))

    def can_start(self, in_flight: int, now: float) -> bool:
        """True if one more request may start now."""
        return now >= self.paused_until and in_flight < self.allowed

    def pause_left(self, now: float) -> float:
        """Seconds until new starts are allowed again (0 when not paused)."""
        return max(0.0, self.paused_until - now)

    def on_success(self) -> None:
        """A request completed (any answer, parseable or not): additive increase."""
        self._streak += 1
        if self._streak >= math.ceil(self.size):
            self._streak = 0
            self.size = min(float(self.limit), self.size + self.increase)

    def on_rate_limit(self, now: float, started_at: float, retry_after_s: float | None) -> None:
        """A request that started at ``started_at`` was rate limited at ``now``.

        Pauses new starts until the Retry-After passes; shrinks the window
        unless the request was already in flight at the last shrink.
        """
        self._streak = 0
        pause = self.default_pause_s if retry_after_s is None else max(0.0, float(retry_after_s))
        self.paused_until = max(self.paused_until, now + pause)
        if started_at >= self.last_shrink:
            self.size = max(1.0, self.size * self.decrease)
            self.last_shrink = now
            self.shrinks += 1

    def on_transient(self) -> None:
        """A 5xx or timeout: no window change, but the success streak restarts."""
        self._streak = 0

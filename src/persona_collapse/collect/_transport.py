"""The one gate every model request goes through: window, retries, Retry-After, budget, counters.

A :class:`Transport` sends :class:`ChatRequest` objects to one backend for
any number of concurrent callers (the collection runner, the verification
subject and its judge). It owns everything that is about *getting an answer
back*, never what the answer means:

* the :class:`AdaptiveWindow` (requests in flight, AIMD on 429s; a 429 also
  pauses every new start until its Retry-After has passed);
* transport retries of 429, 5xx, timeouts and broken 200 bodies (cut-off JSON,
  HTML pages, error objects: ``Retry("malformed")``) with the
  :class:`BackoffPolicy` (seeded jitter); they are never protocol attempts. A
  Retry-After longer than the policy's cap stops the transport at once
  (reason ``retry-after``, a message saying when to run again);
* the cost budget (:class:`CostBudget`, US dollars): before each request the
  estimated cost of every request in flight and of the new one is added to
  what was spent; if that would pass the limit no new request starts (requests
  in flight finish) and :class:`TransportStop` with reason ``max-cost`` is
  raised. One budget may be shared by several transports, so one
  ``--max-cost`` caps subject and judge traffic together;
* the counters (requests, retries, 429s, tokens, estimated cost, in flight,
  window) written into a :class:`TrafficCounters` object (``_traffic``) after every event;
* a graceful stop (:meth:`Transport.stop_sending`, reason ``interrupted``, for
  Ctrl-C): no new request starts, the requests the server is answering finish,
  and every request waiting out a backoff or Retry-After pause, or waiting for
  a window slot, ends at once with the stop.

Out-of-band traffic (batch lines, which a batch API carries instead of
:meth:`Transport.send`) goes through the same budget and counters:
:meth:`Transport.admit` reserves a line's estimated cost before it is
submitted, :meth:`Transport.record` counts an answered line,
:meth:`Transport.record_fault` counts a faulted one and stops the transport
(``retries-exhausted``) once a request has failed more than
``BackoffPolicy.max_retries`` times, and :meth:`Transport.release` frees the
reservation of a line read without an answer to count.

Costs are estimated with :func:`persona_collapse.protocol.estimate_request_tokens`
(the plan's estimate) for the prompt and ``max_tokens`` for the completion.

Decisions come typed from the backend (:class:`Retry`, :class:`Fatal`,
:class:`BadAnswer`). ``send`` returns the result, or ``None`` for a
``BadAnswer`` (a well-formed response that is no usable answer, e.g. a content
filter's refusal: a failed protocol attempt for the caller to count). A
``Fatal`` decision, a request that used all its transport retries, or a
Retry-After beyond the cap stops the transport: ``send`` raises
:class:`TransportStop` there and in every later call. The caller decides
what to cancel and how to word the message (``TransportStop.message`` holds
the collection runner's wording).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from typing import Literal, Protocol

from ..backends import BackendError, BadAnswer, ChatRequest, ChatResult, Fatal, Retry
from ..errors import ConfigError
from ..protocol import estimate_request_tokens
from ._policy import AdaptiveWindow, BackoffPolicy, GiveUp, ResumeLater
from ._traffic import PAUSE_REASONS, RequestTally, TrafficCounters, TrafficStats
from ._waits import pause_unless

StopReason = Literal["fatal", "retries-exhausted", "retry-after", "max-cost", "interrupted"]
#: The stops after which the requests in flight finish (they are not cancelled).
_GENTLE_STOPS: frozenset[str] = frozenset({"max-cost", "interrupted"})


class ChatBackend(Protocol):
    """What a transport needs of a backend (see :class:`persona_collapse.backends.Backend`)."""

    async def complete(self, request: ChatRequest) -> ChatResult: ...


class Pricing(Protocol):
    """A price table entry: USD for a number of prompt and completion tokens."""

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float: ...


class TransportStop(Exception):
    """The transport stopped: no new request starts.

    ``reason``: ``fatal``, ``retries-exhausted``, ``retry-after`` (the server
    asked for a longer pause than the cap), ``max-cost`` or ``interrupted``
    (:meth:`Transport.stop_sending`); ``message``:
    one line for the user (the backend's message for ``fatal``); ``what``: the
    last failure's detail and ``retries`` the retries used (for
    ``retries-exhausted``).
    """

    def __init__(self, reason: StopReason, message: str, *, what: str = "", retries: int = 0):
        super().__init__(message)
        self.reason: StopReason = reason
        self.message = message
        self.what = what
        self.retries = retries

    def again(self) -> TransportStop:
        """A fresh copy, raised to every later caller (one instance is raised once)."""
        return TransportStop(self.reason, self.message, what=self.what, retries=self.retries)


class CostBudget:
    """A spending limit in US dollars, shareable by several transports.

    ``limit_usd`` None means no limit. ``spent_usd``: estimated cost of the
    answers that arrived; ``reserved_usd``: estimates of the requests in
    flight. Once a request is refused, the budget stays ``exhausted`` and
    refuses every later one (of any transport).
    """

    def __init__(self, limit_usd: float | None = None) -> None:
        if limit_usd is not None and not limit_usd > 0:
            raise ConfigError("--max-cost must be a positive number of US dollars")
        self.limit_usd = limit_usd
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.exhausted = False

    def reserve(self, estimate_usd: float) -> bool:
        """Reserve ``estimate_usd`` for a request about to start; False (and exhausted) if over."""
        if self.exhausted:
            return False
        limit = self.limit_usd
        if limit is not None and self.spent_usd + self.reserved_usd + estimate_usd > limit:
            self.exhausted = True
            return False
        self.reserved_usd += estimate_usd
        return True

    def settle(self, estimate_usd: float, cost_usd: float) -> None:
        """A request reserved with ``estimate_usd`` ended having cost ``cost_usd``."""
        self.reserved_usd -= estimate_usd
        self.spent_usd += cost_usd


class Transport:
    """Sends requests to ``backend`` through the window, retries and budget (see module doc).

    ``limit``: the concurrency ceiling of the window; ``price``: a price entry
    for cost estimates (required when ``budget`` has a limit); ``budget``: a
    (possibly shared) :class:`CostBudget`, a private unlimited one if None;
    ``seed``: seeds the backoff jitter; ``stats``: the counters to update (a
    fresh :class:`TrafficStats` if None); ``on_update``: called after every
    event that changes them.
    """

    def __init__(
        self,
        backend: ChatBackend,
        *,
        limit: int,
        policy: BackoffPolicy | None = None,
        price: Pricing | None = None,
        budget: CostBudget | None = None,
        seed: int = 0,
        stats: TrafficCounters | None = None,
        on_update: Callable[[], None] | None = None,
    ) -> None:
        self.budget = budget if budget is not None else CostBudget()
        if self.budget.limit_usd is not None and price is None:
            raise ConfigError(
                "--max-cost needs a price for this model and none is known; "
                "add one to the file named in PERSONA_COLLAPSE_PRICES"
            )
        self.backend = backend
        self.policy = policy or BackoffPolicy()
        self.price = price
        self.window = AdaptiveWindow(limit)
        self.stats: TrafficCounters = stats if stats is not None else TrafficStats()
        self.stats.window = self.window.allowed
        self.on_update = on_update
        self.stopped: TransportStop | None = None
        self._rng = random.Random(seed)
        self._waiters: list[asyncio.Future[None]] = []
        self._stopping = asyncio.Event()  # set by every stop: retry pauses end at once
        self._cost_per_request: float | None = None
        self._reserved: dict[str, float] = {}

    @property
    def halted(self) -> bool:
        """True after a ``fatal``, ``retries-exhausted`` or ``retry-after`` stop (callers
        cancel what is in flight); False while running and after ``max-cost`` or
        ``interrupted``, whose requests in flight finish."""
        return self.stopped is not None and self.stopped.reason not in _GENTLE_STOPS

    def stop_sending(self) -> int:
        """Stop gracefully (reason ``interrupted``, unless a stop came first); returns the
        requests in flight.

        From now on no request starts (:meth:`send` raises :class:`TransportStop`).
        The requests the server is answering finish and :meth:`send` returns their
        answers; a request waiting out a backoff or Retry-After pause, or waiting
        for a window slot, ends at once with the stop: it got no answer, so its
        caller stores nothing and a resume asks it again.
        """
        self._stop(TransportStop("interrupted", "stopped sending (interrupted)"))
        return self.stats.in_flight

    # -- one request with transport retries --------------------------------------

    async def send(
        self, request: ChatRequest, tally: RequestTally | None = None
    ) -> ChatResult | None:
        """The result, or None for an unreadable answer; raises :class:`TransportStop`."""
        tally = tally if tally is not None else RequestTally()
        retries = 0
        estimate = self._estimate_cost(request)
        while True:
            started = await self._acquire(estimate)
            t0 = time.perf_counter()
            try:
                try:
                    result = await self.backend.complete(request)
                except TimeoutError as exc:  # a backend that let an asyncio timeout through
                    raise BackendError(Retry("timeout", detail="request timed out")) from exc
            except BackendError as exc:
                decision = exc.decision
                self._release(estimate, 0.0)
                if isinstance(decision, Fatal):
                    raise self._stop(TransportStop("fatal", decision.message)) from None
                if isinstance(decision, BadAnswer):
                    self.stats.requests += 1
                    self.window.on_success()
                    tally.latency_ms = (time.perf_counter() - t0) * 1000.0
                    tally.bad_answer = decision.detail
                    return None
                assert isinstance(decision, Retry)
                await self._after_retry(decision, started, retries, tally)
                retries += 1
                continue
            except BaseException:
                self._release(estimate, 0.0)
                raise
            tally.latency_ms = (time.perf_counter() - t0) * 1000.0
            self._count(request, result, estimate)
            return result

    def _count(self, request: ChatRequest, result: ChatResult, estimate: float) -> None:
        cost = self._tally(result)
        if self.price is not None and request.max_tokens <= 1:
            self._learn_cost(cost)
        self.window.on_success()
        self._release(estimate, cost)

    def _tally(self, result: ChatResult, price_factor: float = 1.0) -> float:
        """Count one answered request, its tokens and its cost at ``price_factor`` (USD);
        returns its cost at the full price (0 without a price)."""
        st = self.stats
        st.requests += 1
        st.prompt_tokens += result.prompt_tokens
        st.completion_tokens += result.completion_tokens
        full = 0.0
        if self.price is not None:
            full = self.price.cost(result.prompt_tokens, result.completion_tokens)
            st.cost_usd += full * price_factor
        return full

    async def _after_retry(
        self, decision: Retry, started: float, retries: int, tally: RequestTally
    ) -> None:
        st = self.stats
        now = time.monotonic()
        if decision.kind == "rate_limit":
            st.rate_limited += 1
            self.window.on_rate_limit(now, started, decision.after_s)
        else:
            self.window.on_transient()
        st.window = self.window.allowed
        if self.stopped is not None:  # stopped while this request was answered: no retry
            raise self.stopped.again()
        plan = self.policy.plan(retries, self._rng, decision.after_s)
        what = decision.detail or decision.kind.replace("_", " ")
        if isinstance(plan, ResumeLater):
            raise self._stop(
                TransportStop("retry-after", plan.message(), what=what, retries=retries)
            )
        if isinstance(plan, GiveUp):
            message = (
                f"the model server kept failing ({what}) after {retries} retries of "
                "one request; stopped (try again later)"
            )
            raise self._stop(
                TransportStop("retries-exhausted", message, what=what, retries=retries)
            )
        st.retries += 1
        tally.retries += 1
        until = time.monotonic() + plan.seconds
        if until >= st.paused_until:
            st.paused_until = until
            st.pause_reason = PAUSE_REASONS.get(decision.kind, decision.kind)
        self._notify()
        await self._pause(plan.seconds)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` before a retry; a stop (any reason) ends the sleep at once
        and is raised (a retry is a new request, and a stopped transport starts none)."""
        if await pause_unless(self._stopping, seconds):
            assert self.stopped is not None
            raise self.stopped.again()

    # -- the gate: window, pause and budget ---------------------------------------

    async def _acquire(self, estimate: float) -> float:
        """Wait until the window, any 429 pause and the budget allow one more request."""
        loop = asyncio.get_running_loop()
        while True:
            if self.stopped is not None:
                raise self.stopped.again()
            if self.budget.exhausted:
                raise self._stop(_over_budget())
            now = time.monotonic()
            if self.window.can_start(self.stats.in_flight, now):
                if not self.budget.reserve(estimate):
                    raise self._stop(_over_budget())
                self.stats.in_flight += 1
                self.stats.window = self.window.allowed
                return now
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            pause = self.window.pause_left(now)
            try:
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter, timeout=pause)
                else:
                    await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()

    def _release(self, estimate: float, cost: float) -> None:
        self.stats.in_flight -= 1
        self.budget.settle(estimate, cost)
        self._wake()

    def _wake(self) -> None:
        """Let every waiting caller re-check the gate."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _stop(self, stop: TransportStop) -> TransportStop:
        """Record ``stop`` (the first one wins, except that ``fatal`` overrides) and return it."""
        if self.stopped is None or (stop.reason == "fatal" and self.stopped.reason != "fatal"):
            self.stopped = stop
            if stop.reason == "fatal":
                self.stats.stop_reason = "fatal"
            else:
                self.stats.stop_reason = self.stats.stop_reason or stop.reason
        self._wake()
        self._stopping.set()  # a stopped transport retries nothing: no more pause
        self.stats.paused_until = 0.0
        return stop

    def _notify(self) -> None:
        if self.on_update is not None:
            self.on_update()

    # -- cost ------------------------------------------------------------------------

    def _estimate_cost(self, request: ChatRequest) -> float:
        if self.price is None:
            return 0.0
        if self._cost_per_request is not None and request.max_tokens <= 1:
            return self._cost_per_request
        return self._priced_estimate(request)

    def _priced_estimate(self, request: ChatRequest, price_factor: float = 1.0) -> float:
        """The price of the request's estimated prompt tokens and all its ``max_tokens``."""
        if self.price is None:
            return 0.0
        tokens = estimate_request_tokens(request.messages)
        return self.price.cost(tokens, request.max_tokens) * price_factor

    def _learn_cost(self, cost: float) -> None:
        # A high-biased estimate of a one-token request: the largest such cost seen so far.
        if math.isfinite(cost):
            self._cost_per_request = max(self._cost_per_request or 0.0, cost)

    # -- out-of-band traffic (batch lines) -----------------------------------------

    def admit(self, key: str, request: ChatRequest, price_factor: float = 1.0) -> bool:
        """Reserve the estimated cost of out-of-band request ``key`` (e.g. a batch line).

        ``price_factor``: the share of the direct price it is billed at (a batch
        discount). False when the budget refuses it: the transport stops with
        ``max-cost`` and nothing more is admitted.
        """
        if self.stopped is not None:
            return False
        estimate = self._priced_estimate(request, price_factor)
        if not self.budget.reserve(estimate):
            self._stop(_over_budget())
            return False
        self._reserved[key] = self._reserved.get(key, 0.0) + estimate
        return True

    def record(
        self, key: str, request: ChatRequest, result: ChatResult, price_factor: float = 1.0
    ) -> float:
        """Count the answer of out-of-band request ``key``; returns its cost at the full price.

        Requests, tokens and the cost at ``price_factor`` go into the counters
        and the budget (settling ``key``'s reservation, if this session made one).
        """
        full = self._tally(result, price_factor)
        self.budget.settle(self._reserved.pop(key, 0.0), full * price_factor)
        return full

    def record_fault(
        self, key: str, decision: Retry, faults: int, *, what: str = "request"
    ) -> TransportStop | None:
        """Count a transport fault of out-of-band request ``key`` (its ``faults``-th).

        Past ``BackoffPolicy.max_retries`` faults the transport stops
        (``retries-exhausted``) and the stop is returned; ``what`` names the
        request in its message.
        """
        st = self.stats
        st.retries += 1
        if decision.kind == "rate_limit":
            st.rate_limited += 1
        self.release(key)
        if faults <= self.policy.max_retries:
            return None
        message = f"{what} failed {faults} times ({decision.detail}); what arrived is stored"
        stop = TransportStop("retries-exhausted", message, what=decision.detail, retries=faults)
        return self._stop(stop)

    def release(self, key: str) -> None:
        """Free the reservation of out-of-band request ``key`` (read, nothing to count)."""
        self.budget.settle(self._reserved.pop(key, 0.0), 0.0)


def _over_budget() -> TransportStop:
    return TransportStop("max-cost", "stopped before exceeding --max-cost")

"""The asyncio runner: asks every planned slot with the published sampling protocol.

Up to ``concurrency`` slots are worked on at once; every request goes through
one :class:`~persona_collapse.collect.Transport` (the adaptive window, the
transport retries, Retry-After pauses and the cost budget live there). Each
slot steps the one :class:`~persona_collapse.protocol.SlotProtocol` (next
request -> transport -> answer), which follows PROTOCOL.md section 2:

* ``sample``: one-token requests (``max_tokens=1``) at the run's temperature,
  accepted when the answer is a single scale digit; up to ``max_attempts``
  of them, then ONE longer generation (``fallback_max_tokens``) read with
  :func:`parse_fallback`; failing that the slot is stored as missing
  (rating -1). ``failures`` is the number of failed (unparseable) attempts
  before the accepted answer; a missing slot has ``max_attempts + 1``.
* ``logprobs``: one request with the logprob suffix at T = 1, ``max_tokens=1``
  and ``top_logprobs=k``; the scale distribution (spellings summed,
  renormalised) is stored with ``other_mass``, ``absent`` and ``floor_mass``
  in ``extra``. ``rating`` is the argmax of the distribution (the lowest
  value on ties). A response without logprobs counts as a failed attempt
  (after ``max_attempts`` of them the slot is missing, ``failures`` =
  ``max_attempts``); one whose top-k holds no scale value at all is stored
  as missing at once (asking again at T = 1 reads the same logits).

Transport failures (429, 5xx, timeouts, and 200s whose body is no answer:
cut-off JSON, an HTML page, an error object) are retried by the transport and
are never protocol attempts: only a well-formed answer without a scale digit
uses one of the ``max_attempts``. A ``Fatal`` decision, a request that used
all its transport retries, or a Retry-After beyond the cap cancels everything
in flight and ends the run with a :class:`ConfigError`; what was stored stays stored and the unfinished slots
are asked again on resume. Every answer is committed to the store the moment
it arrives. Every request carries a seed derived from (run seed, persona,
item, repetition, attempt), so two repetitions of one cell are never one
cached answer.

``max_cost_usd``: when the transport's budget refuses a request, no new
request starts (requests in flight finish and are stored) and the run ends
with ``stop_reason="max-cost"``. Slots cut short this way are not stored, so
resuming asks them again.

:meth:`Collector.stop_sending` (Ctrl-C or SIGTERM, see ``GracefulStop``) does
the same for a stop (:meth:`Transport.stop_sending`): no new request starts (no
new slot, protocol attempt or transport retry), a request waiting out a
backoff or Retry-After pause ends at once, the answers in flight are stored as
they arrive and :meth:`Collector.run` returns with ``stop_reason="interrupted"``
once they have; a slot whose answer in flight needed another attempt, or whose
request was waiting to be retried, is left unstored (a resume asks it).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..errors import ConfigError
from ..instruments import Instrument
from ..protocol import (
    Ask,
    ProtocolSettings,
    SlotAnswer,
    SlotProtocol,
    SlotState,
    request_seed,
)
from ..store import MISSING_RATING, ResponseRow
from ._plan import SELF_PERSONA_ID, Slot
from ._policy import AdaptiveWindow, BackoffPolicy
from ._progress import Timed
from ._traffic import RequestTally, pause_note
from ._transport import ChatBackend, CostBudget, Pricing, Transport, TransportStop

__all__ = [
    "ChatBackend",
    "CollectConfig",
    "CollectStats",
    "Collector",
    "Pricing",
    "ResponseSink",
    "local_timestamp",
    "request_seed",
    "slot_protocol",
    "slot_row",
]


class ResponseSink(Protocol):
    """Where answers go (a :class:`persona_collapse.store.ResponseStore`)."""

    def add_response(self, run_id: str, row: ResponseRow) -> bool: ...


@dataclass(frozen=True)
class CollectConfig:
    """How the runner asks (the protocol) and how hard it pushes (concurrency, retries).

    ``seed``: base of the per-request seeds and of the backoff jitter.
    ``timeout_s``: per-request timeout given to the backend.
    ``max_cost_usd``: stop before the estimated spend passes it (needs a price).
    """

    protocol: ProtocolSettings = field(default_factory=ProtocolSettings)
    concurrency: int = 8
    timeout_s: float = 60.0
    seed: int = 0
    max_cost_usd: float | None = None
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if not self.timeout_s > 0:
            raise ConfigError("--timeout must be positive")
        if self.max_cost_usd is not None and not self.max_cost_usd > 0:
            raise ConfigError("--max-cost must be a positive number of US dollars")


@dataclass
class CollectStats(Timed):
    """Live counters of one collection session (progress bar and summary).

    ``planned``: slots this session set out to fill; ``stored_before``: slots
    already in the store when it started; ``done``: slots this session stored;
    ``already_stored``: answered slots another writer had stored meanwhile
    (kept as they were). ``failures``: unparseable attempts;
    ``retries``: transport retries (``rate_limited`` of them after a 429).
    ``stop_reason``: None when every planned slot was asked, else ``max-cost``,
    ``interrupted``, ``fatal``, ``retries-exhausted`` or ``retry-after``. The
    traffic counters (requests to ``pause_reason``) are written by the
    :class:`Transport`.
    """

    planned: int = 0
    stored_before: int = 0
    done: int = 0
    already_stored: int = 0
    missing: int = 0
    failures: int = 0
    retries: int = 0
    rate_limited: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    in_flight: int = 0
    window: int = 0
    paused_until: float = 0.0
    pause_reason: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    stop_reason: str | None = None

    def progress_counts(self) -> str:
        """The run-specific part of the progress line: failures and missing slots."""
        return f"failures {self.failures} missing {self.missing}"

    def pause_note(self) -> str:
        """``paused 12 s (rate limit)`` while the transport waits to retry, else ''."""
        if self.finished is not None:
            return ""
        return pause_note(self)


def slot_protocol(
    config: CollectConfig, instrument: Instrument, personas: Mapping[int, str] | None = None
) -> SlotProtocol:
    """The :class:`SlotProtocol` of a run with ``config`` (the same for direct and batch runs)."""
    return SlotProtocol(
        instrument,
        config.protocol,
        seed=config.seed,
        timeout_s=config.timeout_s,
        personas=personas,
    )


def local_timestamp() -> str:
    """The current local time, ISO-8601 with microseconds and no zone (as in the published CSVs)."""
    return datetime.now().isoformat(timespec="microseconds")


def slot_row(
    slot: Slot,
    answer: SlotAnswer,
    *,
    latency_ms: float | None,
    extra: Mapping[str, Any] | None = None,
) -> ResponseRow:
    """The stored row of ``slot``'s finished ``answer``, timestamped now (local time, as the CSVs).

    ``latency_ms``: of the answering request (None where unknown, e.g. batch
    results); ``extra``: the driver's facts (batch id, transport retries),
    merged with the answer's own (fallback flag, logprob fields).
    """
    info = {**dict(extra or {}), **answer.extra}
    return ResponseRow(
        persona_id=slot.persona_id,
        item_id=slot.item_id,
        repetition=slot.repetition,
        rating=answer.rating,
        failures=answer.failures,
        raw_text=answer.raw_text,
        distribution=answer.distribution,
        collected_at=local_timestamp(),
        latency_ms=latency_ms,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        extra=info or None,
    )


class Collector:
    """Fills ``slots`` of run ``run_id`` by asking ``backend``; answers go to ``sink`` at once.

    ``personas`` maps persona ids to texts (ignored for self-mode slots).
    ``price``: a price entry for cost estimates (required with ``max_cost_usd``).
    ``on_update``: called with the live :class:`CollectStats` after every event.
    ``budget``: a :class:`CostBudget` shared with other transports (default: a
    private one with ``config.max_cost_usd``).
    """

    def __init__(
        self,
        backend: ChatBackend,
        sink: ResponseSink,
        run_id: str,
        instrument: Instrument,
        slots: Sequence[Slot],
        config: CollectConfig,
        *,
        personas: Mapping[int, str] | None = None,
        price: Pricing | None = None,
        on_update: Callable[[CollectStats], None] | None = None,
        stats: CollectStats | None = None,
        budget: CostBudget | None = None,
    ) -> None:
        self.backend = backend
        self.sink = sink
        self.run_id = run_id
        self.instrument = instrument
        self.config = config
        self.personas = dict(personas or {})
        self.price = price
        self.on_update = on_update
        self.stats = stats or CollectStats()
        self.stats.planned = len(slots)
        self.transport = Transport(
            backend,
            limit=config.concurrency,
            policy=config.policy,
            price=price,
            budget=budget if budget is not None else CostBudget(config.max_cost_usd),
            seed=config.seed,
            stats=self.stats,
            on_update=self._notify_update,
        )
        self._queue: deque[Slot] = deque(slots)
        self._check_personas(slots)
        self.protocol = slot_protocol(config, instrument, self.personas)

    @property
    def window(self) -> AdaptiveWindow:
        """The transport's :class:`AdaptiveWindow`."""
        return self.transport.window

    def _check_personas(self, slots: Sequence[Slot]) -> None:
        needed = {s.persona_id for s in slots if s.persona_id != SELF_PERSONA_ID}
        unknown = needed - set(self.personas)
        if unknown:
            raise ValueError(f"no persona text for persona ids {sorted(unknown)[:5]}")

    # -- public ----------------------------------------------------------------

    def stop_sending(self) -> int:
        """Start no new request from now on (:meth:`Transport.stop_sending`): requests
        waiting out a retry pause end at once, unstored; :meth:`run` returns once those
        in flight are answered and stored (``stop_reason="interrupted"``). Returns how
        many are in flight."""
        in_flight = self.transport.stop_sending()
        self.stats.stop_reason = self.stats.stop_reason or "interrupted"
        return in_flight

    async def run(self) -> CollectStats:
        """Ask every slot; returns the stats. Raises ConfigError on a fatal backend error."""
        self.stats.started = time.monotonic()
        n_workers = min(self.config.concurrency, len(self._queue))
        workers = [asyncio.create_task(self._worker()) for _ in range(n_workers)]
        try:
            pending: set[asyncio.Task[None]] = set(workers)
            # A fatal answer or a request out of retries ends the run at once: requests in
            # flight are cancelled (their slots stay unstored and are asked on resume).
            while pending and not self.transport.halted:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is not None:
                        raise exc
        except asyncio.CancelledError:
            self.stats.stop_reason = "interrupted"
            raise
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.stats.finished = time.monotonic()
            self.stats.in_flight = 0
            self._notify_update()
        stop = self.transport.stopped
        if stop is not None and self.transport.halted:
            raise ConfigError(stop.message)
        return self.stats

    # -- workers ---------------------------------------------------------------

    async def _worker(self) -> None:
        while self._queue and self.transport.stopped is None:
            slot = self._queue.popleft()
            try:
                row = await self._ask(slot)
            except TransportStop:
                return
            self._commit(row)

    def _commit(self, row: ResponseRow) -> None:
        st = self.stats
        if not self.sink.add_response(self.run_id, row):
            # Another process resuming the same run stored this slot first; the key keeps one.
            st.already_stored += 1
            return
        st.done += 1
        if row.rating == MISSING_RATING:
            st.missing += 1
        self._notify_update()

    def _notify_update(self) -> None:
        if self.on_update is not None:
            self.on_update(self.stats)

    async def _ask(self, slot: Slot) -> ResponseRow:
        """Step ``slot``'s protocol to its end: each Ask goes through the transport."""
        state = SlotState()
        tally = RequestTally()
        while True:
            step = self.protocol.next(slot, state)
            if not isinstance(step, Ask):
                return self._row(slot, step, tally)
            result = await self.transport.send(step.request, tally)
            after = self.protocol.answer(slot, state, step.attempt, result)
            if after.failures > state.failures:
                self.stats.failures += after.failures - state.failures
            state = after

    def _row(self, slot: Slot, answer: SlotAnswer, tally: RequestTally) -> ResponseRow:
        extra = {"transport_retries": tally.retries} if tally.retries else None
        return slot_row(slot, answer, latency_ms=round(tally.latency_ms, 3), extra=extra)

"""The batch runner: the published protocol through a provider's batch API, at the batch price.

``run --batch`` (``openai/`` Batch API, ``anthropic/`` Message Batches) asks
the same requests as the direct runner (the same
:class:`~persona_collapse.protocol.SlotProtocol`: the same bodies and
per-attempt seeds) in rounds:

* every pending slot's next attempt goes into one batch (split by the
  provider's :class:`~persona_collapse.backends.BatchLimits`); the batch ids are
  written to the store (``batch_jobs``) the moment the provider accepts them,
  and a pending row (the uploaded input file's id, or the request count and
  time) just before the create call, so a run killed in between finds the
  batch in the provider's list instead of paying for it again;
* the batches are polled every ``poll_s`` seconds, for at most ``timeout_s``
  seconds in one session (``--batch-timeout``, default the providers' 24 h
  window): then the run stops (ConfigError, one line) and a resume polls the
  same batches again; a poll or a results download that fails transiently
  (5xx, 429, timeout, broken body) is sent again under the run's backoff
  policy (``_batch_reads``) instead of ending the run, as is the listing that
  adoption reads (``_batch_adopt``);
* an ended batch's result lines are checked against what it sent (see
  ``_batch_lines``): a line counts only when its custom id is one the batch
  was sent with and that attempt is still open; lines naming any other id
  (another batch's, an attempt never sent) are ignored and counted, and one
  line on stderr and the run's notes say how many. Lines of one id that agree
  are one answer; lines that disagree are never resolved: the slot's attempt
  is asked again (a transport fault) and a warning says how many;
* each counted line is judged as the same direct answer would be: a digit
  (or, for logprob runs, a distribution) stores the slot; a well-formed answer
  without one uses an attempt; an unreadable or null line, a 5xx or 429 line,
  and the lines of a failed, expired or cancelled batch are transport faults
  (the slot's attempt is asked again in the next round, never counted as one;
  after ``policy.max_retries`` faults of one slot the run stops, resumable);
  a 4xx line ends the run (as the same error on a direct request does);
  results that answer 404 (past the provider's retention) are said in one line
  and every open request of that batch is asked again;
* slots without a digit go into the next round, their fallback generation
  (attempt ``max_attempts``) last; logprob runs are one round unless an answer
  lacks logprobs.

Nothing is lost and nothing paid twice: a run started again finds its unread
batches in the store and adopts them (polls and reads them) before creating
any (and resolves the intents a crash left, see ``_batch_adopt``); each
slot's next attempt, failures and tokens are kept in ``batch_slots`` between
rounds. A result whose attempt is not the slot's pending one is ignored (read
twice after a kill: stored once). A stop (:meth:`BatchCollector.stop_sending`)
creates no further batch and ends the polls at once (results already on the way
are stored); the batches in flight stay open in the store, for the resume to adopt.

Cost: every token at the batch price (``price x discount``); ``--max-cost``
refuses to submit lines whose estimated cost (the plan's token estimate in,
``max_tokens`` out, at the batch price) would pass the limit. The batch keeps
no fault, retry or spend accounting of its own: every line is admitted,
recorded or faulted through a :class:`~persona_collapse.collect.Transport`
(its :class:`CostBudget` and counters), as direct requests are.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import partial
from typing import Any

from ..backends import (
    UNREADABLE,
    Backend,
    BackendError,
    BadAnswer,
    BatchItem,
    BatchNotCreated,
    ChatRequest,
    ChatResult,
    Fatal,
    ResultsGone,
    Retry,
)
from ..errors import ConfigError
from ..instruments import Instrument
from ..protocol import Ask, SlotState
from ..store import MISSING_RATING, BatchJob, BatchLedger, ResponseRow, ResponseStore
from ._batch_adopt import batch_metadata, resolve_pending
from ._batch_lines import SlotKey, agreeing, custom_id, new_nonce, parse_custom_id, sort_lines
from ._batch_reads import ReadStopped, retried_read
from ._batch_stats import BatchStats
from ._collector import CollectConfig, CollectStats, Pricing, slot_protocol, slot_row
from ._plan import Slot
from ._transport import CostBudget, Transport
from ._waits import pause_unless

DEFAULT_BATCH_POLL_S = 30.0
"""Seconds between two polls of a batch in flight (``--batch-poll``)."""

DEFAULT_BATCH_TIMEOUT_S = 24 * 3600.0
"""Seconds one session waits for its batches to end (``--batch-timeout``): the providers'
24 h completion window."""

_Update = tuple[SlotKey, SlotState | None]


def _warn(text: str) -> None:
    print(f"persona-collapse: {text}", file=sys.stderr)


class BatchCollector:
    """Fills ``slots`` of ``run_id`` through ``backend``'s batch API (see the module doc).

    ``discount``: the batch price factor (0.5); ``price``: the direct price
    (None: no cost figures, and ``max_cost_usd`` must be None); ``poll_s``:
    seconds between two polls; ``timeout_s``: seconds this session waits for
    the batches in flight to end before it stops, resumable.
    """

    def __init__(
        self,
        backend: Backend,
        store: ResponseStore,
        run_id: str,
        instrument: Instrument,
        slots: Sequence[Slot],
        config: CollectConfig,
        *,
        personas: Mapping[int, str] | None = None,
        price: Pricing | None = None,
        discount: float = 1.0,
        poll_s: float = DEFAULT_BATCH_POLL_S,
        timeout_s: float = DEFAULT_BATCH_TIMEOUT_S,
        on_update: Callable[[CollectStats], None] | None = None,
        stats: BatchStats | None = None,
    ) -> None:
        if backend.batch is None:
            raise ConfigError(f"{backend.spec.full} has no batch API; run without --batch")
        self.backend = backend
        self.api = backend.batch
        self.store = store
        self.ledger = BatchLedger(store)
        self.run_id = run_id
        self.instrument = instrument
        self.config = config
        self.personas = dict(personas or {})
        self.price = price
        self.discount = discount
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.on_update = on_update
        self.stats = stats or BatchStats()
        self.stats.planned = len(slots)
        self._slots: dict[SlotKey, Slot] = {
            (s.persona_id, s.item_id, s.repetition): s for s in slots
        }
        self.protocol = slot_protocol(config, instrument, self.personas)
        self._progress: dict[SlotKey, SlotState] = {}
        self._fatal: str | None = None
        self._stopping = asyncio.Event()
        self._reading: dict[str, int] = {}  # batch id -> open requests, results downloading
        self._read_rng = random.Random(config.seed)  # jitter of retried polls and downloads
        self.transport = Transport(
            backend,
            limit=config.concurrency,
            policy=config.policy,
            price=price,
            budget=CostBudget(config.max_cost_usd),
            seed=config.seed,
            stats=self.stats,
            on_update=self._notify,
        )

    # -- public ----------------------------------------------------------------

    def stop_sending(self) -> int:
        """Create no further batch and stop polling at once (a poll sleep wakes): the batches
        in flight run on at the provider, stay in the store and a resume adopts them. Results
        being downloaded are still read and stored; then :meth:`run` returns
        (``stop_reason="interrupted"``). Returns the open requests of those results (0:
        nothing to wait for)."""
        self.stats.stop_reason = self.stats.stop_reason or "interrupted"
        self._stopping.set()
        return sum(self._reading.values())

    async def run(self) -> BatchStats:
        """Rounds until every slot is stored; raises ConfigError on a fatal line or error,
        or when the batches in flight did not end within ``timeout_s``."""
        st = self.stats
        st.started = time.monotonic()
        stored = self.ledger.progress(self.run_id)
        self._progress = {k: stored.get(k, SlotState()) for k in self._slots}
        jobs = self.ledger.jobs(self.run_id)
        st.round = max((j.round for j in jobs), default=0)
        try:
            await resolve_pending(
                self.api,
                self.ledger,
                self.run_id,
                self._created,
                policy=self.config.policy,
                rng=self._read_rng,
            )
            opened = self.ledger.open_jobs(self.run_id)
            st.adopted = len(opened)
            while True:
                if opened:
                    deadline = time.monotonic() + self.timeout_s
                    await asyncio.gather(*(self._finish(job, deadline) for job in opened))
                    if self._fatal is not None:
                        raise ConfigError(self._fatal)
                if not self._slots or st.stop_reason is not None:
                    break
                st.round += 1
                opened = await self._submit_round(st.round)
                if not opened:
                    break
        except asyncio.CancelledError:
            st.stop_reason = "interrupted"
            raise
        except BackendError as exc:
            decision = exc.decision
            st.stop_reason = "fatal"
            message = decision.message if isinstance(decision, Fatal) else str(exc)
            raise ConfigError(message) from None
        finally:
            st.finished = time.monotonic()
            self._notify()
        return st

    # -- rounds ----------------------------------------------------------------

    def _created(self, batch_id: str) -> None:
        self.stats.created += 1
        self.stats.batches[batch_id] = "submitted"
        self._notify()

    def _round_lines(self) -> list[list[tuple[str, dict[str, Any]]]]:
        """Every pending slot's next attempt as a batch line, split by the provider's limits;
        custom ids carry one fresh nonce for the round."""
        limits = self.api.limits
        nonce = new_nonce()
        chunks: list[list[tuple[str, dict[str, Any]]]] = [[]]
        size = 0
        for key, slot in self._slots.items():
            step = self.protocol.next(slot, self._progress[key])
            assert isinstance(step, Ask)  # a finished slot is stored and leaves _slots
            cid = custom_id(slot, step.attempt, nonce)
            if not self.transport.admit(cid, step.request, self.discount):
                break  # the budget refused: the transport stopped with max-cost
            line = self.api.line(cid, step.request)
            n_bytes = len(json.dumps(line).encode("utf-8")) + 1
            chunk = chunks[-1]
            if chunk and (len(chunk) >= limits.max_requests or size + n_bytes > limits.max_bytes):
                chunks.append([])
                chunk, size = chunks[-1], 0
            chunk.append((cid, line))
            size += n_bytes
        return [chunk for chunk in chunks if chunk]

    async def _submit_round(self, round_no: int) -> list[BatchJob]:
        """One batch (or several, by the size limits) of every pending slot's next attempt."""
        jobs: list[BatchJob] = []
        provider = self.backend.spec.family
        metadata = batch_metadata(self.run_id, round_no)
        for chunk in self._round_lines():
            lines = [line for _, line in chunk]
            cids = tuple(c for c, _ in chunk)
            if self._stopping.is_set():
                break  # stopped: the rest of the round is asked on resume
            prepared = await self.api.prepare(lines)
            if self._stopping.is_set():
                break
            pkey = f"file:{prepared}" if prepared is not None else f"new:{uuid.uuid4().hex}"
            # Stored BEFORE the create call: a run killed between the provider's
            # accepting the batch and the next line finds it again (_batch_adopt).
            pending = self.ledger.add_pending(self.run_id, provider, round_no, pkey, cids)
            try:
                batch_id = await self.api.submit(lines, prepared, metadata)
            except BatchNotCreated:
                self.ledger.drop(self.run_id, pending.batch_id)  # refused: nothing to adopt
                raise
            self.ledger.resolve_pending(self.run_id, pending.batch_id, batch_id, "submitted")
            jobs.append(BatchJob(self.run_id, batch_id, provider, round_no, "submitted", cids))
            self._created(batch_id)
        return jobs

    async def _wait(self, job: BatchJob, deadline: float) -> bool:
        """Poll ``job`` until it ends (True), or ``deadline`` (monotonic seconds) passes or the
        run is stopped (False: the job stays open, for a resume to adopt)."""
        while not self._stopping.is_set():
            try:
                status = await retried_read(
                    partial(self.api.poll, job.batch_id),
                    self.config.policy,
                    self._read_rng,
                    self._stopping,
                )
            except ReadStopped:
                return False
            self.stats.batches[job.batch_id] = status.state
            if status.state != job.state:
                self.ledger.set_state(self.run_id, job.batch_id, status.state)
            self._notify()
            if status.ended:
                return not self._stopping.is_set()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await pause_unless(self._stopping, min(self.poll_s, left))
        else:
            return False
        self.stats.stop_reason = self.stats.stop_reason or "batch-timeout"
        if self._fatal is None:
            self._fatal = (
                f"batch {job.batch_id} has not ended after {self.timeout_s:g} s "
                f"(--batch-timeout); it stays in the store and a resume polls it again"
            )
        return False

    async def _finish(self, job: BatchJob, deadline: float) -> None:
        """Poll ``job`` until it ends, then read, check and store its results."""
        if not await self._wait(job, deadline):
            return
        open_ids = sum(1 for cid in job.custom_ids if self._open(cid) is not None)
        self._reading[job.batch_id] = open_ids  # answers on the way, for stop_sending
        try:
            items = await retried_read(
                partial(self.api.results, job.batch_id), self.config.policy, self._read_rng
            )
        except ResultsGone as gone:
            self.stats.gone += 1
            _warn(f"{gone}; its {open_ids} open requests are submitted again")
            items = []
        finally:
            del self._reading[job.batch_id]
        self.ledger.save_progress(self.run_id, self._read_lines(job, items), read=job.batch_id)
        self.stats.batches[job.batch_id] = f"{self.stats.batches[job.batch_id]}, read"
        self._notify()

    # -- result lines --------------------------------------------------------------

    def _open(self, cid: str) -> tuple[SlotKey, Slot, SlotState, int] | None:
        """The slot, progress and attempt custom id ``cid`` names, if that attempt is open."""
        parsed = parse_custom_id(cid)
        if parsed is None:
            return None
        key, attempt = parsed
        slot, state = self._slots.get(key), self._progress.get(key)
        if slot is None or state is None or state.attempt != attempt:
            return None  # stored already, or read before (a resumed run)
        return key, slot, state, attempt

    def _read_lines(self, job: BatchJob, items: Sequence[BatchItem]) -> list[_Update]:
        """Apply the result lines of ``job`` that name its own open requests (module doc)."""
        sorted_lines = sort_lines(job.custom_ids, items)
        updates: list[_Update] = []
        conflicting = 0
        for cid, lines in sorted_lines.lines.items():
            target = self._open(cid)
            if target is None:
                self.transport.release(cid)
                continue
            key, slot, state, attempt = target
            request = self.protocol.request(slot, attempt)
            if not lines:  # a failed, expired or cancelled batch, or results gone
                why = "batch ended without this request"
                updates.append(self._fault(cid, key, state, Retry("transient", detail=why)))
            elif len(lines) > 1 and not agreeing(lines, partial(self._verdict, request=request)):
                conflicting += 1
                why = "the batch answered it twice with different answers"
                updates.append(self._fault(cid, key, state, Retry("malformed", detail=why)))
            else:
                update = self._apply(cid, target, request, lines[0], job.batch_id)
                if update is not None:
                    updates.append(update)
        self._say_refused(job, sorted_lines.foreign, conflicting)
        return updates

    def _say_refused(self, job: BatchJob, foreign: int, conflicting: int) -> None:
        self.stats.ignored_lines += foreign
        self.stats.conflicting += conflicting
        if foreign:
            _warn(
                f"batch {job.batch_id}: {foreign} result lines named requests it never sent "
                "(another batch's, or an attempt never asked) and were ignored"
            )
        if conflicting:
            _warn(
                f"batch {job.batch_id}: {conflicting} requests came back twice with different "
                "answers; none was stored, they are asked again"
            )

    def _verdict(self, item: BatchItem, request: ChatRequest) -> Hashable:
        """What one line says (its answer, or the kind of its error): lines agree when equal."""
        if item.status == UNREADABLE:
            return ("unreadable",)
        try:
            result = self.api.read(item, request)
        except BackendError as exc:
            decision = exc.decision
            return (type(decision).__name__, getattr(decision, "kind", ""))
        return ("answer", result.text, tuple(result.top_logprobs or ()))

    def _fault(self, cid: str, key: SlotKey, state: SlotState, decision: Retry) -> _Update:
        """A transport fault of request ``cid``: its attempt is asked again next round."""
        state = self.protocol.fault(state)
        self._progress[key] = state
        stop = self.transport.record_fault(cid, decision, state.faults, what=f"batch request {cid}")
        if stop is not None and self._fatal is None:
            self._fatal = stop.message
        return key, state

    def _apply(
        self,
        cid: str,
        target: tuple[SlotKey, Slot, SlotState, int],
        request: ChatRequest,
        item: BatchItem,
        batch_id: str,
    ) -> _Update | None:
        """Judge one counted line of an open request (``request``: the attempt's request, as
        sent) as the same direct answer would be."""
        key, slot, state, attempt = target
        if item.status == UNREADABLE:
            why = "unreadable batch result line (cut JSON or a null result)"
            return self._fault(cid, key, state, Retry("malformed", detail=why))
        try:
            result: ChatResult | None = self.api.read(item, request)
        except BackendError as exc:
            decision = exc.decision
            if isinstance(decision, Fatal):
                self.transport.release(cid)
                if self._fatal is None:
                    self._fatal = decision.message
                return None
            if not isinstance(decision, BadAnswer):  # Retry: a transport fault, never an attempt
                return self._fault(cid, key, state, decision)
            self.transport.release(cid)
            result = None
        if result is not None:
            full = self.transport.record(cid, request, result, self.discount)
            self.stats.saved_usd += full * (1.0 - self.discount)
        after = self.protocol.answer(slot, state, attempt, result)
        self.stats.failures += after.failures - state.failures
        if after.outcome is None:
            self._progress[key] = after
            return key, after
        extra: dict[str, Any] = {"batch_id": batch_id}
        if after.faults:
            extra["transport_retries"] = after.faults
        self._commit(key, slot_row(slot, after.outcome, latency_ms=None, extra=extra))
        return key, None

    def _commit(self, key: SlotKey, row: ResponseRow) -> None:
        st = self.stats
        del self._slots[key]
        del self._progress[key]
        if not self.store.add_response(self.run_id, row):
            st.already_stored += 1
            return
        st.done += 1
        if row.rating == MISSING_RATING:
            st.missing += 1

    def _notify(self) -> None:
        if self.on_update is not None:
            self.on_update(self.stats)

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
* the batches are polled every ``poll_s`` seconds; an ended batch's result
  lines are read and judged as the same direct answer would be: a digit (or,
  for logprob runs, a distribution) stores the slot; a well-formed answer
  without one uses an attempt; a malformed line, a 5xx or 429 line, and the
  lines of a failed, expired or cancelled batch are transport faults (the
  slot's attempt is asked again in the next round, never counted as one;
  after ``policy.max_retries`` faults of one slot the run stops, resumable);
  a 4xx line ends the run (as the same error on a direct request does);
* slots without a digit go into the next round, their fallback generation
  (attempt ``max_attempts``) last; logprob runs are one round unless an answer
  lacks logprobs.

Nothing is lost and nothing paid twice: a run started again finds its unread
batches in the store and adopts them (polls and reads them) before creating
any; each slot's next attempt, failures and tokens are kept in ``batch_slots``
between rounds. A custom id ``p{persona}i{item}r{repetition}a{attempt}`` names
one request; a result whose attempt is not the slot's pending one is ignored
(read twice after a kill: stored once).

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
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..backends import Backend, BackendError, BadAnswer, ChatRequest, ChatResult, Fatal, Retry
from ..errors import ConfigError
from ..instruments import Instrument
from ..protocol import Ask, SlotState
from ..store import (
    MISSING_RATING,
    PENDING_PREFIX,
    READ_STATE,
    BatchJob,
    BatchLedger,
    ResponseRow,
    ResponseStore,
)
from ._collector import CollectConfig, CollectStats, Pricing, slot_protocol, slot_row
from ._plan import Slot
from ._transport import CostBudget, Transport

SlotKey = tuple[int, int, int]
_CUSTOM_ID = re.compile(r"^p(-?\d+)i(\d+)r(\d+)a(\d+)$")
DEFAULT_POLL_S = 30.0
"""Seconds between two polls of a batch (``--batch-poll``)."""


def custom_id(slot: Slot, attempt: int) -> str:
    """``p{persona}i{item}r{repetition}a{attempt}`` (fits Anthropic's ``[A-Za-z0-9_-]{1,64}``)."""
    return f"p{slot.persona_id}i{slot.item_id}r{slot.repetition}a{attempt}"


def parse_custom_id(text: str) -> tuple[SlotKey, int] | None:
    """``((persona, item, repetition), attempt)`` of a custom id; None if it is not one."""
    m = _CUSTOM_ID.match(text)
    if m is None:
        return None
    return (int(m[1]), int(m[2]), int(m[3])), int(m[4])


@dataclass
class BatchStats(CollectStats):
    """:class:`CollectStats` plus the batch counters shown in the progress line and summary.

    ``round``: the batch round in progress; ``batches``: batch id -> its latest
    state (this session's and adopted ones); ``adopted``: batches found in the
    store and adopted; ``created``: batches this session created;
    ``saved_usd``: what the same tokens would have cost more at the direct price.
    """

    round: int = 0
    batches: dict[str, str] = field(default_factory=dict)
    adopted: int = 0
    created: int = 0
    saved_usd: float = 0.0

    def progress_counts(self) -> str:
        states: dict[str, int] = {}
        for state in self.batches.values():
            states[state] = states.get(state, 0) + 1
        what = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"
        return (
            f"round {self.round} batches {len(self.batches)} ({what}) "
            f"failures {self.failures} missing {self.missing}"
        )


def batch_note(stats: BatchStats, *, priced: bool) -> str:
    """The summary's batch sentence: rounds, batches created and adopted, the discount saved."""
    saved = f"${stats.saved_usd:.2f}" if priced else "unknown (no known price)"
    return (
        f"Batch API: {stats.round} rounds, {stats.created} batches created, "
        f"{stats.adopted} adopted from an earlier session; the batch discount saved {saved}."
    )


class BatchCollector:
    """Fills ``slots`` of ``run_id`` through ``backend``'s batch API (see the module doc).

    ``discount``: the batch price factor (0.5); ``price``: the direct price
    (None: no cost figures, and ``max_cost_usd`` must be None).
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
        poll_s: float = DEFAULT_POLL_S,
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
        self.on_update = on_update
        self.stats = stats or BatchStats()
        self.stats.planned = len(slots)
        self._slots: dict[SlotKey, Slot] = {
            (s.persona_id, s.item_id, s.repetition): s for s in slots
        }
        self.protocol = slot_protocol(config, instrument, self.personas)
        self._progress: dict[SlotKey, SlotState] = {}
        self._fatal: str | None = None
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

    async def run(self) -> BatchStats:
        """Rounds until every slot is stored; raises ConfigError on a fatal line or error."""
        st = self.stats
        st.started = time.monotonic()
        stored = self.ledger.progress(self.run_id)
        self._progress = {k: stored.get(k, SlotState()) for k in self._slots}
        jobs = self.ledger.jobs(self.run_id)
        st.round = max((j.round for j in jobs), default=0)
        try:
            await self._resolve_pending()
            opened = self.ledger.open_jobs(self.run_id)
            st.adopted = len(opened)
            while True:
                if opened:
                    await asyncio.gather(*(self._finish(job) for job in opened))
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

    def _request(self, slot: Slot, attempt: int) -> ChatRequest:
        return self.protocol.request(slot, attempt)

    async def _resolve_pending(self) -> None:
        """Find the batches an earlier session created but was killed before storing.

        OpenAI: the batch whose ``input_file_id`` is the stored upload is adopted;
        if none is listed, it is created now from that file. Anthropic: a batch
        created at or after the row's time with the same request count is adopted
        if exactly one is; otherwise one line on stderr says one may exist, and
        the row's slots go into a new round.
        """
        known = self.ledger.known_ids()
        for job in self.ledger.pending_jobs(self.run_id):
            kind, _, value = job.batch_id[len(PENDING_PREFIX) :].partition(":")
            prepared = value if kind == "file" else None
            since = datetime.fromisoformat(job.created).timestamp() if job.created else 0.0
            found = await self.api.list(prepared, len(job.custom_ids), since)
            found = [f for f in found if f not in known]
            if prepared is not None and not found:
                batch_id = await self.api.submit(
                    [], prepared, {"persona_collapse_run": self.run_id, "round": str(job.round)}
                )
                self.ledger.resolve_pending(self.run_id, job.batch_id, batch_id, "submitted")
                self.stats.created += 1
                self.stats.batches[batch_id] = "submitted"
                known.add(batch_id)
                continue
            if len(found) == 1 or (prepared is not None and found):
                self.ledger.resolve_pending(self.run_id, job.batch_id, found[0], "submitted")
                known.add(found[0])
                continue
            self.ledger.drop(self.run_id, job.batch_id)
            print(
                f"persona-collapse: an earlier session may have created a batch of "
                f"{len(job.custom_ids)} requests at {job.created} that is not in the store "
                f"({len(found)} candidates); check the provider's console or "
                "messages.batches.list and cancel it if it is unwanted",
                file=sys.stderr,
            )

    async def _submit_round(self, round_no: int) -> list[BatchJob]:
        """One batch (or several, by the size limits) of every pending slot's next attempt."""
        limits = self.api.limits
        chunks: list[list[tuple[str, dict[str, Any]]]] = [[]]
        size = 0
        for key, slot in self._slots.items():
            step = self.protocol.next(slot, self._progress[key])
            assert isinstance(step, Ask)  # a finished slot is stored and leaves _slots
            attempt, request = step.attempt, step.request
            cid = custom_id(slot, attempt)
            if not self.transport.admit(cid, request, self.discount):
                break  # the budget refused: the transport stopped with max-cost
            line = self.api.line(cid, request)
            n_bytes = len(json.dumps(line).encode("utf-8")) + 1
            chunk = chunks[-1]
            if chunk and (len(chunk) >= limits.max_requests or size + n_bytes > limits.max_bytes):
                chunks.append([])
                chunk, size = chunks[-1], 0
            chunk.append((cid, line))
            size += n_bytes
        jobs: list[BatchJob] = []
        provider = self.backend.spec.family
        for chunk in chunks:
            if not chunk:
                continue
            lines = [line for _, line in chunk]
            cids = tuple(c for c, _ in chunk)
            prepared = await self.api.prepare(lines)
            pkey = f"file:{prepared}" if prepared is not None else f"new:{uuid.uuid4().hex}"
            # Stored BEFORE the create call: a run killed between the provider's
            # accepting the batch and the next line finds it again (_resolve_pending).
            pending = self.ledger.add_pending(self.run_id, provider, round_no, pkey, cids)
            batch_id = await self.api.submit(
                lines, prepared, {"persona_collapse_run": self.run_id, "round": str(round_no)}
            )
            self.ledger.resolve_pending(self.run_id, pending.batch_id, batch_id, "submitted")
            job = BatchJob(self.run_id, batch_id, provider, round_no, "submitted", cids)
            self.stats.created += 1
            self.stats.batches[batch_id] = "submitted"
            jobs.append(job)
            self._notify()
        return jobs

    async def _finish(self, job: BatchJob) -> None:
        """Poll ``job`` until it ends, then read and store its results."""
        while True:
            status = await self.api.poll(job.batch_id)
            self.stats.batches[job.batch_id] = status.state
            if status.state != job.state:
                self.ledger.set_state(self.run_id, job.batch_id, status.state)
            self._notify()
            if status.ended:
                break
            await asyncio.sleep(self.poll_s)
        items = await self.api.results(job.batch_id)
        answered: set[str] = set()
        updates: list[tuple[SlotKey, SlotState | None]] = []
        for item in items:
            answered.add(item.custom_id)
            update = self._apply(item.custom_id, item, job.batch_id)
            if update is not None:
                updates.append(update)
        # Lines of a failed, expired or cancelled batch that never came back: transport faults.
        for cid in job.custom_ids:
            if cid not in answered:
                update = self._apply(cid, None, job.batch_id)
                if update is not None:
                    updates.append(update)
        self.ledger.save_progress(self.run_id, updates)
        self.ledger.set_state(self.run_id, job.batch_id, READ_STATE)
        self.stats.batches[job.batch_id] = f"{status.state}, read"
        self._notify()

    # -- one result line ---------------------------------------------------------

    def _apply(self, cid: str, item: Any, batch_id: str) -> tuple[SlotKey, SlotState | None] | None:
        key, attempt = parse_custom_id(cid) or ((0, 0, 0), -1)
        slot = self._slots.get(key)
        state = self._progress.get(key)
        if slot is None or state is None or state.attempt != attempt:
            self.transport.release(cid)
            return None  # not ours, stored already, or read before (a resumed run)
        request = self._request(slot, attempt)
        try:
            if item is None:
                raise BackendError(Retry("transient", detail="batch ended without this request"))
            result: ChatResult | None = self.api.read(item, request)
        except BackendError as exc:
            decision = exc.decision
            if isinstance(decision, Fatal):
                self.transport.release(cid)
                if self._fatal is None:
                    self._fatal = decision.message
                return None
            if isinstance(decision, BadAnswer):
                self.transport.release(cid)
                result = None
            else:  # Retry: a transport fault, asked again next round, never an attempt
                state = self.protocol.fault(state)
                self._progress[key] = state
                what = f"batch request {cid}"
                stop = self.transport.record_fault(cid, decision, state.faults, what=what)
                if stop is not None and self._fatal is None:
                    self._fatal = stop.message
                return key, state
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

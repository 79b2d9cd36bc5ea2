"""The batch runner: the published protocol through a provider's batch API, at the batch price.

``run --batch`` (``openai/`` Batch API, ``anthropic/`` Message Batches) asks
the same requests as the direct runner (:func:`attempt_request`: the same
bodies and per-attempt seeds) in rounds:

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
refuses to submit lines whose estimated cost (prompt characters / 4 + 7
tokens in, ``max_tokens`` out, at the batch price) would pass the limit.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ..backends import Backend, BackendError, BadAnswer, ChatRequest, ChatResult, Fatal, Retry
from ..errors import ConfigError
from ..instruments import Instrument
from ..protocol import digit_distribution, parse_fallback, parse_one_token, slot_messages
from ..store import (
    MISSING_RATING,
    PENDING_PREFIX,
    READ_STATE,
    BatchJob,
    BatchLedger,
    ResponseRow,
    ResponseStore,
    SlotProgress,
)
from ._collector import CollectConfig, CollectStats, Pricing, attempt_request, slot_row
from ._plan import SELF_PERSONA_ID, Slot

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


def _estimate_tokens(request: ChatRequest) -> int:
    chars = sum(len(m["content"]) for m in request.messages)
    return math.ceil(chars / 4.0) + 7


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
        self._progress: dict[SlotKey, SlotProgress] = {}
        self._fatal: str | None = None
        self._spent = 0.0

    # -- public ----------------------------------------------------------------

    async def run(self) -> BatchStats:
        """Rounds until every slot is stored; raises ConfigError on a fatal line or error."""
        st = self.stats
        st.started = time.monotonic()
        stored = self.ledger.progress(self.run_id)
        self._progress = {k: stored.get(k, SlotProgress()) for k in self._slots}
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

    def _messages(self, slot: Slot) -> list[dict[str, str]]:
        persona = None if slot.persona_id == SELF_PERSONA_ID else self.personas[slot.persona_id]
        logprobs = self.config.protocol.method == "logprobs"
        return slot_messages(self.instrument, slot.item_id, persona, logprobs=logprobs)

    def _request(self, slot: Slot, attempt: int) -> ChatRequest:
        return attempt_request(self.config, slot, attempt, self._messages(slot))

    def _line_cost(self, request: ChatRequest) -> float:
        if self.price is None:
            return 0.0
        return self.price.cost(_estimate_tokens(request), request.max_tokens) * self.discount

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
        limit_usd = self.config.max_cost_usd
        chunks: list[list[tuple[str, dict[str, Any]]]] = [[]]
        size = 0
        reserved = 0.0
        for key, slot in self._slots.items():
            attempt = self._progress[key].attempt
            request = self._request(slot, attempt)
            if limit_usd is not None:
                cost = self._line_cost(request)
                if self._spent + reserved + cost > limit_usd:
                    self.stats.stop_reason = "max-cost"
                    break
                reserved += cost
            cid = custom_id(slot, attempt)
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
        updates: list[tuple[SlotKey, SlotProgress | None]] = []
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

    def _apply(
        self, cid: str, item: Any, batch_id: str
    ) -> tuple[SlotKey, SlotProgress | None] | None:
        parsed = parse_custom_id(cid)
        if parsed is None:
            return None
        key, attempt = parsed
        slot = self._slots.get(key)
        prog = self._progress.get(key)
        if slot is None or prog is None or prog.attempt != attempt:
            return None  # stored already, or a result read before (a resumed run)
        request = self._request(slot, attempt)
        st = self.stats
        try:
            if item is None:
                raise BackendError(Retry("transient", detail="batch ended without this request"))
            result: ChatResult | None = self.api.read(item, request)
        except BackendError as exc:
            decision = exc.decision
            if isinstance(decision, Fatal):
                if self._fatal is None:
                    self._fatal = decision.message
                return None
            if isinstance(decision, BadAnswer):
                result = None
            else:  # Retry: a transport fault, asked again next round, never an attempt
                prog.faults += 1
                st.retries += 1
                if decision.kind == "rate_limit":
                    st.rate_limited += 1
                if prog.faults > self.config.policy.max_retries and self._fatal is None:
                    st.stop_reason = "retries-exhausted"
                    self._fatal = (
                        f"batch request {cid} failed {prog.faults} times ({decision.detail}); "
                        "what arrived is stored"
                    )
                return key, prog
        if result is not None:
            self._count(result, prog)
        row = self._judge(slot, attempt, result, prog, batch_id)
        if row is None:
            return key, prog
        self._commit(key, row)
        return key, None

    def _count(self, result: ChatResult, prog: SlotProgress) -> None:
        st = self.stats
        st.requests += 1
        st.prompt_tokens += result.prompt_tokens
        st.completion_tokens += result.completion_tokens
        prog.prompt_tokens += result.prompt_tokens
        prog.completion_tokens += result.completion_tokens
        if self.price is not None:
            full = self.price.cost(result.prompt_tokens, result.completion_tokens)
            st.cost_usd += full * self.discount
            st.saved_usd += full * (1.0 - self.discount)
            self._spent += full * self.discount

    def _failed(self, prog: SlotProgress) -> None:
        prog.failures += 1
        prog.attempt += 1
        self.stats.failures += 1

    def _judge(
        self,
        slot: Slot,
        attempt: int,
        result: ChatResult | None,
        prog: SlotProgress,
        batch_id: str,
    ) -> ResponseRow | None:
        """The row to store for this answer, or None (the slot goes to the next round)."""
        proto = self.config.protocol
        scale = self.instrument.scale
        text = None if result is None else result.text
        if text is not None:
            prog.raw_text = text
        extra: dict[str, Any] = {"batch_id": batch_id}
        if prog.faults:
            extra["transport_retries"] = prog.faults
        if proto.method == "logprobs":
            if result is None or not result.top_logprobs:
                self._failed(prog)
                if prog.attempt >= proto.max_attempts:
                    return self._row(slot, MISSING_RATING, prog, prog.raw_text, extra)
                return None
            dist = digit_distribution(result.top_logprobs, scale)
            extra.update(dist.to_extra())
            if not float(dist.probs.sum()) > 0:
                return self._row(slot, MISSING_RATING, prog, result.text, extra)
            best = scale.values[int(np.argmax(dist.probs))]
            return self._row(slot, best, prog, result.text, extra, [float(p) for p in dist.probs])
        if attempt < proto.max_attempts:
            digit = None if text is None else parse_one_token(text, scale)
            if digit is not None:
                return self._row(slot, digit, prog, text, extra)
            self._failed(prog)
            return None
        extra["fallback"] = True
        parsed = None if text is None else parse_fallback(text, scale)
        if parsed is not None:
            return self._row(slot, parsed, prog, text, extra)
        self._failed(prog)
        return self._row(slot, MISSING_RATING, prog, prog.raw_text, extra)

    def _row(
        self,
        slot: Slot,
        rating: int,
        prog: SlotProgress,
        text: str | None,
        extra: dict[str, Any],
        distribution: list[float] | None = None,
    ) -> ResponseRow:
        return slot_row(
            slot,
            rating,
            failures=prog.failures,
            text=text,
            distribution=distribution,
            latency_ms=None,
            prompt_tokens=prog.prompt_tokens,
            completion_tokens=prog.completion_tokens,
            extra=extra,
        )

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

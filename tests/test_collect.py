"""Offline tests of the slot planner, the retry/rate-limit policy, the transport and the runner
(scripted backend)."""

from __future__ import annotations

import asyncio
import io
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from persona_collapse.backends import (
    BackendError,
    BadAnswer,
    ChatRequest,
    ChatResult,
    Fatal,
    Retry,
)
from persona_collapse.collect import (
    AdaptiveWindow,
    BackoffPolicy,
    CollectConfig,
    Collector,
    CollectStats,
    CostBudget,
    GiveUp,
    ProgressDisplay,
    RequestTally,
    ResumeLater,
    RetryWait,
    Slot,
    TrafficStats,
    Transport,
    TransportStop,
    pause_note,
    plan_slots,
    request_seed,
    slot_grid,
)
from persona_collapse.errors import ConfigError
from persona_collapse.instruments import load_instrument
from persona_collapse.protocol import ProtocolSettings
from persona_collapse.store import ResponseRow

# -- planning ---------------------------------------------------------------------


def test_persona_grid_is_personas_x_items_x_reps() -> None:
    slots = slot_grid(range(1, 31), [0, 1, 2], 4)
    assert len(slots) == 3 * 30 * 4
    assert len(set(slots)) == len(slots)
    assert slots[0] == Slot(0, 1, 1)
    assert slots[-1] == Slot(2, 30, 4)
    assert {s.repetition for s in slots} == {1, 2, 3, 4}


def test_self_grid_uses_persona_minus_one() -> None:
    slots = slot_grid(range(1, 31), None, 10)
    assert len(slots) == 30 * 10
    assert {s.persona_id for s in slots} == {-1}


def test_logprob_grid_has_one_slot_per_cell() -> None:
    slots = slot_grid(range(1, 31), [3, 7], 10, method="logprobs")
    assert len(slots) == 2 * 30
    assert {s.repetition for s in slots} == {1}


def test_plan_skips_completed_slots() -> None:
    done = {(0, 1, 1), (0, 1, 2), (1, 30, 3), (9, 9, 9)}
    slots = plan_slots(range(1, 31), [0, 1], 3, done=done)
    assert len(slots) == 2 * 30 * 3 - 3
    assert not {s.key for s in slots} & done


def test_plan_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        slot_grid([1], [0], 0)
    with pytest.raises(ValueError):
        slot_grid([1], [0], 1, method="guess")


# -- backoff ----------------------------------------------------------------------


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = BackoffPolicy(base_s=0.5, cap_s=4.0, jitter=0.0)
    rng = random.Random(0)
    assert [policy.delay(n, rng) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_jitter_is_bounded_and_seeded() -> None:
    policy = BackoffPolicy(base_s=1.0, cap_s=60.0, jitter=0.5)
    first = [policy.delay(3, random.Random(42)) for _ in range(3)]
    assert first[0] == first[1] == first[2]  # same seed, same delay
    rng = random.Random(1)
    delays = [policy.delay(3, rng) for _ in range(500)]
    assert min(delays) >= 4.0 and max(delays) <= 8.0
    assert max(delays) - min(delays) > 2.0  # actually jittered


def test_retry_after_is_honoured_never_earlier() -> None:
    policy = BackoffPolicy(base_s=0.5, cap_s=30.0, jitter=1.0, max_retry_after_s=100.0)
    rng = random.Random(3)
    for _ in range(100):
        d = policy.delay(0, rng, retry_after_s=7.0)
        assert 7.0 <= d <= 7.0 * 1.1
    # Retry-After beyond the computed cap is still honoured, up to max_retry_after_s.
    assert policy.delay(0, rng, retry_after_s=60.0) >= 60.0
    assert policy.delay(0, rng, retry_after_s=1e6) <= 110.0


def test_give_up_after_max_retries() -> None:
    policy = BackoffPolicy(max_retries=8)
    assert not any(policy.give_up(n) for n in range(8))
    assert policy.give_up(8)


def test_backoff_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(jitter=1.5)
    with pytest.raises(ValueError):
        BackoffPolicy(base_s=2.0, cap_s=1.0)


# -- adaptive window --------------------------------------------------------------


def test_window_starts_at_the_limit() -> None:
    w = AdaptiveWindow(8)
    assert w.allowed == 8
    assert w.can_start(7, now=0.0)
    assert not w.can_start(8, now=0.0)


def test_rate_limit_shrinks_multiplicatively_and_pauses() -> None:
    w = AdaptiveWindow(16, decrease=0.5)
    w.on_rate_limit(now=10.0, started_at=9.9, retry_after_s=2.0)
    assert w.allowed == 8
    assert not w.can_start(0, now=11.0)  # paused until 12.0
    assert w.pause_left(11.0) == pytest.approx(1.0)
    assert w.can_start(7, now=12.0)
    assert not w.can_start(8, now=12.0)


def test_rate_limit_never_shrinks_below_one() -> None:
    w = AdaptiveWindow(4)
    for k in range(20):
        t = float(k)
        w.on_rate_limit(now=t, started_at=t, retry_after_s=0.0)
    assert w.allowed == 1
    assert w.can_start(0, now=100.0)


def test_a_burst_of_429s_shrinks_once() -> None:
    w = AdaptiveWindow(64)
    # 30 requests in flight since t=0 all come back 429 at t=1.
    for _ in range(30):
        w.on_rate_limit(now=1.0, started_at=0.0, retry_after_s=0.1)
    assert w.allowed == 32
    assert w.shrinks == 1
    # A request started after that shrink and limited again shrinks it again.
    w.on_rate_limit(now=2.0, started_at=1.5, retry_after_s=0.1)
    assert w.allowed == 16


def test_window_grows_back_additively_to_the_limit() -> None:
    w = AdaptiveWindow(8, decrease=0.5)
    w.on_rate_limit(now=0.0, started_at=0.0, retry_after_s=None)
    assert w.allowed == 4
    w.on_success()
    w.on_success()
    w.on_success()
    assert w.allowed == 4
    w.on_success()  # a window's worth of successes: +1
    assert w.allowed == 5
    for _ in range(1000):
        w.on_success()
    assert w.allowed == 8  # never above --concurrency


def test_transient_errors_reset_the_streak_without_shrinking() -> None:
    w = AdaptiveWindow(8)
    w.on_rate_limit(now=0.0, started_at=0.0, retry_after_s=None)
    for _ in range(3):
        w.on_success()
    w.on_transient()
    w.on_success()
    assert w.allowed == 4
    assert w.pause_left(0.1) == pytest.approx(0.4)  # default pause without Retry-After


def test_window_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        AdaptiveWindow(0)
    with pytest.raises(ValueError):
        AdaptiveWindow(4, decrease=1.0)


# -- the runner, against a scripted in-process backend (no HTTP, no SDK) ------------------

FAST = BackoffPolicy(base_s=0.001, cap_s=0.01, max_retries=3)
MFQ = load_instrument("mfq30")

Script = Callable[[ChatRequest, int], ChatResult]


@dataclass
class ScriptedBackend:
    """Answers by ``script(request, n)`` where n counts requests per prompt; records requests."""

    script: Script
    delay_s: float = 0.0
    requests: list[ChatRequest] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.requests.append(request)
        prompt = request.messages[-1]["content"]
        n = self.counts.get(prompt, 0)
        self.counts[prompt] = n + 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            return self.script(request, n)
        finally:
            self.in_flight -= 1


@dataclass
class ListSink:
    rows: list[ResponseRow] = field(default_factory=list)

    def add_response(self, run_id: str, row: ResponseRow) -> bool:
        self.rows.append(row)
        return True


def _collect(
    script: Script,
    slots: list[Slot],
    *,
    protocol: ProtocolSettings | None = None,
    concurrency: int = 4,
    delay_s: float = 0.0,
    max_cost: float | None = None,
    price: object | None = None,
) -> tuple[ListSink, ScriptedBackend, CollectStats]:
    backend = ScriptedBackend(script, delay_s=delay_s)
    sink = ListSink()
    config = CollectConfig(
        protocol=protocol or ProtocolSettings(),
        concurrency=concurrency,
        policy=FAST,
        max_cost_usd=max_cost,
    )
    collector = Collector(
        backend,
        sink,
        "run",
        MFQ,
        slots,
        config,
        personas={0: "A persona.", 1: "Another persona."},
        price=price,  # type: ignore[arg-type]
    )
    stats = asyncio.run(collector.run())
    return sink, backend, stats


def _text(text: str) -> ChatResult:
    return ChatResult(text=text, prompt_tokens=100, completion_tokens=1)


def test_runner_accepts_the_first_digit_and_counts_failures() -> None:
    def script(req: ChatRequest, n: int) -> ChatResult:
        return _text(["I", " Sure", " 3 "][min(n, 2)])

    sink, backend, stats = _collect(script, [Slot(0, 1, 1)])
    (row,) = sink.rows
    assert row.rating == 3 and row.failures == 2 and row.raw_text == " 3 "
    assert len(backend.requests) == 3
    assert all(r.max_tokens == 1 and r.temperature == 0.1 for r in backend.requests)
    assert stats.failures == 2 and stats.missing == 0
    assert row.prompt_tokens == 300 and row.completion_tokens == 3
    assert row.collected_at[:4].isdigit() and "T" in row.collected_at


def test_runner_falls_back_to_one_longer_generation() -> None:
    def script(req: ChatRequest, n: int) -> ChatResult:
        return _text("I would say 4, mostly." if req.max_tokens > 1 else "Well")

    sink, backend, _ = _collect(script, [Slot(0, 2, 1)])
    (row,) = sink.rows
    assert row.rating == 4 and row.failures == 10
    assert row.extra is not None and row.extra["fallback"] is True
    assert [r.max_tokens for r in backend.requests] == [1] * 10 + [64]


def test_runner_records_missing_after_the_fallback_fails() -> None:
    sink, backend, stats = _collect(lambda req, n: _text("No."), [Slot(-1, 3, 1)])
    (row,) = sink.rows
    assert row.rating == -1 and row.failures == 11 and row.persona_id == -1
    assert len(backend.requests) == 11
    assert stats.missing == 1


def test_unreadable_answers_are_attempts_but_transport_errors_are_not() -> None:
    def script(req: ChatRequest, n: int) -> ChatResult:
        if n == 0:
            raise BackendError(BadAnswer("cut body"))
        if n in (1, 2):
            raise BackendError(Retry("rate_limit", after_s=0.001))
        if n == 3:
            raise BackendError(Retry("transient"))
        return _text("5")

    sink, _, stats = _collect(script, [Slot(0, 4, 1)])
    (row,) = sink.rows
    assert row.rating == 5 and row.failures == 1
    assert row.extra == {"transport_retries": 3}
    assert stats.retries == 3 and stats.rate_limited == 2


def test_each_slot_and_attempt_gets_its_own_seed() -> None:
    slots = slot_grid([1, 2], [0, 1], 3)
    _, backend, _ = _collect(lambda req, n: _text("I" if n == 0 else "2"), slots)
    seeds = [r.seed for r in backend.requests]
    # The first request of each (persona, item) prompt fails: 4 cells, 4 extra attempts.
    assert len(seeds) == len(slots) + 4 and len(set(seeds)) == len(seeds)
    assert request_seed(0, Slot(0, 1, 1), 0) != request_seed(0, Slot(0, 1, 2), 0)
    assert request_seed(0, Slot(0, 1, 1), 0) == request_seed(0, Slot(0, 1, 1), 0)


def test_concurrency_bounds_requests_in_flight() -> None:
    slots = slot_grid(range(1, 31), [0, 1], 2)
    sink, backend, _ = _collect(lambda req, n: _text("1"), slots, concurrency=5, delay_s=0.002)
    assert len(sink.rows) == len(slots)
    assert backend.max_in_flight == 5
    assert len({(r.persona_id, r.item_id, r.repetition) for r in sink.rows}) == len(slots)


def test_fatal_stops_the_run_and_keeps_what_was_stored() -> None:
    calls = {"n": 0}

    def script(req: ChatRequest, n: int) -> ChatResult:
        calls["n"] += 1
        if calls["n"] > 20:
            raise BackendError(Fatal("the key was revoked; check OPENAI_API_KEY"))
        return _text("2")

    backend = ScriptedBackend(script, delay_s=0.001)
    sink = ListSink()
    slots = slot_grid(range(1, 31), [0, 1], 3)
    collector = Collector(
        backend,
        sink,
        "run",
        MFQ,
        slots,
        CollectConfig(concurrency=4, policy=FAST),
        personas={0: "a", 1: "b"},
    )
    with pytest.raises(ConfigError, match="revoked"):
        asyncio.run(collector.run())
    assert 16 <= len(sink.rows) <= 20
    assert collector.stats.stop_reason == "fatal"
    assert len(backend.requests) < 30  # nothing started after the fatal answer


def test_exhausted_transport_retries_stop_the_run_without_storing_the_slot() -> None:
    def script(req: ChatRequest, n: int) -> ChatResult:
        if "A persona." in req.messages[0]["content"]:
            raise BackendError(Retry("transient", detail="HTTP 503: overloaded"))
        return _text("1")

    backend = ScriptedBackend(script)
    sink = ListSink()
    collector = Collector(
        backend,
        sink,
        "run",
        MFQ,
        [Slot(1, 1, 1), Slot(0, 1, 1)],
        CollectConfig(concurrency=1, policy=FAST),
        personas={0: "A persona.", 1: "B persona."},
    )
    with pytest.raises(ConfigError, match="503"):
        asyncio.run(collector.run())
    assert [(r.persona_id, r.item_id) for r in sink.rows] == [(1, 1)]
    assert len(backend.requests) == 1 + FAST.max_retries + 1


def test_logprob_slot_stores_the_distribution_and_its_argmax() -> None:
    top = [("3", math.log(0.5)), (" 3", math.log(0.1)), ("4", math.log(0.3)), ("I", math.log(0.1))]

    def script(req: ChatRequest, n: int) -> ChatResult:
        if n == 0:
            return ChatResult(text="3", top_logprobs=None)  # a server that left them out
        return ChatResult(text="3", top_logprobs=top, prompt_tokens=90, completion_tokens=1)

    protocol = ProtocolSettings(method="logprobs")
    sink, backend, _ = _collect(script, [Slot(0, 5, 1)], protocol=protocol)
    (row,) = sink.rows
    assert row.rating == 3 and row.failures == 1
    assert row.distribution is not None
    assert row.distribution[3] == pytest.approx(0.6 / 0.9)
    assert row.distribution[4] == pytest.approx(0.3 / 0.9)
    assert row.extra is not None and row.extra["other_mass"] == pytest.approx(0.1)
    assert set(row.extra["absent"]) == {0, 1, 2, 5}
    request = backend.requests[-1]
    assert request.top_logprobs == 20 and request.temperature == 1.0 and request.max_tokens == 1
    assert request.messages[0]["content"].endswith(MFQ.logprob_suffix)


def test_logprob_slot_without_any_scale_token_is_missing() -> None:
    top = [("I", math.log(0.7)), ("Sure", math.log(0.3))]
    protocol = ProtocolSettings(method="logprobs")
    sink, backend, _ = _collect(
        lambda req, n: ChatResult(text="I", top_logprobs=top), [Slot(0, 6, 1)], protocol=protocol
    )
    (row,) = sink.rows
    assert row.rating == -1 and row.distribution is None
    assert len(backend.requests) == 1


@dataclass(frozen=True)
class _Price:
    per_token: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens + completion_tokens) * self.per_token


def test_max_cost_stops_before_the_limit() -> None:
    slots = slot_grid(range(1, 31), [0, 1], 2)
    price = _Price(0.001)  # 101 tokens a request: $0.101
    sink, backend, stats = _collect(
        lambda req, n: _text("2"), slots, concurrency=4, max_cost=2.0, price=price
    )
    assert stats.stop_reason == "max-cost"
    assert stats.cost_usd <= 2.0
    assert 10 <= len(sink.rows) < len(slots)
    assert len(backend.requests) == len(sink.rows)


def test_max_cost_needs_a_price() -> None:
    with pytest.raises(ConfigError, match="max-cost"):
        Collector(
            ScriptedBackend(lambda req, n: _text("1")),
            ListSink(),
            "run",
            MFQ,
            [],
            CollectConfig(max_cost_usd=1.0),
        )


# -- the transport ---------------------------------------------------------------------


@dataclass
class TimedBackend:
    """Answers from ``replies`` in order (errors are raised); records when calls began and raised."""

    replies: list[ChatResult | BackendError]
    calls: list[float] = field(default_factory=list)
    raised: list[float] = field(default_factory=list)

    async def complete(self, request: ChatRequest) -> ChatResult:
        reply = self.replies[min(len(self.calls), len(self.replies) - 1)]
        self.calls.append(time.monotonic())
        await asyncio.sleep(0)
        if isinstance(reply, BackendError):
            self.raised.append(time.monotonic())
            raise BackendError(reply.decision)
        return reply


ONE = ChatRequest(messages=[{"role": "user", "content": "Rate it."}], temperature=0.1, max_tokens=1)


def _send_all(transport: Transport, n: int) -> list[ChatResult | None]:
    async def main() -> list[ChatResult | None]:
        return list(await asyncio.gather(*(transport.send(ONE) for _ in range(n))))

    return asyncio.run(main())


def test_transport_429_with_retry_after_pauses_and_shrinks_the_window() -> None:
    limited = BackendError(Retry("rate_limit", after_s=0.02, detail="HTTP 429"))
    backend = TimedBackend([limited, *[_text("1")] * 20])
    transport = Transport(backend, limit=4, policy=FAST)
    results = _send_all(transport, 8)
    assert all(r is not None and r.text == "1" for r in results)
    st = transport.stats
    assert (st.rate_limited, st.retries, st.requests) == (1, 1, 8)
    assert transport.window.shrinks == 1
    # No request started after the 429 before its Retry-After had passed.
    (t_429,) = backend.raised
    later = [t for t in backend.calls if t > t_429]
    assert later and all(t >= t_429 + 0.02 for t in later)
    assert transport.window.paused_until >= t_429 + 0.02
    assert transport.window.paused_until <= time.monotonic()


def test_transport_5xx_backs_off_with_seeded_jitter_without_shrinking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, result: object = None) -> object:
        waits.append(delay)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    failing = BackendError(Retry("transient", detail="HTTP 503"))
    backend = TimedBackend([failing, failing, _text("4")])
    transport = Transport(backend, limit=3, policy=FAST, seed=7)
    tally = RequestTally()
    result = asyncio.run(transport.send(ONE, tally))
    assert result is not None and result.text == "4"
    rng = random.Random(7)
    expected = [FAST.delay(0, rng), FAST.delay(1, rng)]
    assert [w for w in waits if w > 0] == expected
    assert tally.retries == 2 and transport.stats.retries == 2
    assert transport.stats.rate_limited == 0 and transport.window.allowed == 3


def test_transport_bad_answer_returns_none_and_counts_a_request() -> None:
    backend = TimedBackend([BackendError(BadAnswer("cut body"))])
    transport = Transport(backend, limit=2, policy=FAST)
    tally = RequestTally()
    assert asyncio.run(transport.send(ONE, tally)) is None
    assert tally.bad_answer == "cut body" and tally.retries == 0
    assert transport.stats.requests == 1 and transport.stopped is None


def test_transport_fatal_stops_every_later_request() -> None:
    backend = TimedBackend([BackendError(Fatal("the key was revoked")), _text("1")])
    transport = Transport(backend, limit=2, policy=FAST)

    async def main() -> tuple[TransportStop, TransportStop]:
        with pytest.raises(TransportStop) as first:
            await transport.send(ONE)
        with pytest.raises(TransportStop) as second:
            await transport.send(ONE)
        return first.value, second.value

    first, second = asyncio.run(main())
    assert first.reason == second.reason == "fatal"
    assert first.message == second.message == "the key was revoked"
    assert len(backend.calls) == 1 and transport.halted
    assert transport.stats.stop_reason == "fatal"


def test_transport_exhausted_retries_stop_with_the_collect_message() -> None:
    backend = TimedBackend([BackendError(Retry("transient", detail="HTTP 503: overloaded"))])
    transport = Transport(backend, limit=1, policy=FAST)
    with pytest.raises(TransportStop) as stop:
        asyncio.run(transport.send(ONE))
    assert stop.value.reason == "retries-exhausted" and stop.value.retries == FAST.max_retries
    assert stop.value.message == (
        f"the model server kept failing (HTTP 503: overloaded) after {FAST.max_retries} "
        "retries of one request; stopped (try again later)"
    )
    assert len(backend.calls) == FAST.max_retries + 1
    assert transport.halted and transport.stats.stop_reason == "retries-exhausted"


def test_a_shared_budget_stops_two_transports() -> None:
    budget = CostBudget(1.0)
    price = _Price(0.001)  # 101 tokens a request: $0.101
    subject = TimedBackend([_text("1")])
    judge = TimedBackend([_text("90")])
    a = Transport(subject, limit=2, policy=FAST, price=price, budget=budget)
    b = Transport(judge, limit=2, policy=FAST, price=price, budget=budget)

    async def main() -> str:
        for turn in range(100):
            try:
                await (a if turn % 2 == 0 else b).send(ONE)
            except TransportStop as stop:
                assert stop.reason == "max-cost"
                return "a" if turn % 2 == 0 else "b"
        raise AssertionError("the budget never stopped")

    stopped_first = asyncio.run(main())
    other = b if stopped_first == "a" else a
    with pytest.raises(TransportStop, match="max-cost"):
        asyncio.run(other.send(ONE))
    spent = a.stats.cost_usd + b.stats.cost_usd
    assert spent == pytest.approx(budget.spent_usd) and spent <= 1.0
    assert len(subject.calls) + len(judge.calls) == 9  # 9 x $0.101 fits, a tenth would not
    assert len(subject.calls) >= 4 and len(judge.calls) >= 4
    assert budget.reserved_usd == pytest.approx(0.0)


def test_transport_with_a_limit_needs_a_price() -> None:
    with pytest.raises(ConfigError, match="max-cost"):
        Transport(TimedBackend([_text("1")]), limit=1, budget=CostBudget(1.0))


def test_run_progress_line_is_unchanged() -> None:
    stats = CollectStats(done=3, failures=2, missing=1, retries=4, prompt_tokens=12_345)
    display = ProgressDisplay("r1", total=10, stored_before=2, mode="plain", stream=io.StringIO())
    assert display.line(stats) == (
        "r1: 5/10 slots (50%), 0.0 req/s, retries 4 failures 2 missing 1 tokens 12.3k/0 n/a"
    )


# -- transport faults never become data ------------------------------------------------


def test_broken_bodies_are_retried_and_never_counted_as_failures() -> None:
    """Retry("malformed") (cut JSON, HTML page, error object) is no protocol attempt."""

    def script(req: ChatRequest, n: int) -> ChatResult:
        if n < 2:
            raise BackendError(Retry("malformed", detail="response body is not JSON"))
        return _text("4")

    sink, backend, stats = _collect(script, [Slot(0, 4, 1)])
    (row,) = sink.rows
    assert row.rating == 4 and row.failures == 0
    assert row.extra == {"transport_retries": 2}
    assert stats.failures == 0 and stats.retries == 2 and stats.missing == 0
    # The same attempt (same seed) is asked again, not a new one.
    assert len({r.seed for r in backend.requests}) == 1


def test_a_server_that_keeps_answering_garbage_stops_the_run_and_stores_nothing() -> None:
    def script(req: ChatRequest, n: int) -> ChatResult:
        raise BackendError(Retry("malformed", detail="HTTP 200 with an HTML page"))

    with pytest.raises(ConfigError, match="kept failing") as caught:
        _collect(script, slot_grid([1, 2], [0], 2))
    assert "\n" not in str(caught.value)


# -- Retry-After beyond the cap: a typed decision, tested offline ------------------------


def test_policy_plans_wait_give_up_or_resume_later() -> None:
    policy = BackoffPolicy()
    assert policy.max_retry_after_s == 120.0
    rng = random.Random(0)
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    later = policy.plan(0, rng, 86400.0, now=now)
    assert later == ResumeLater(86400.0, now + timedelta(days=1))
    assert later.message() == (
        "the server asked to wait 86400 s (until 2026-12-03 10:00 UTC); "
        "run the same command again then"
    )
    # A Retry-After at the cap is waited out, never earlier.
    wait = policy.plan(0, rng, 120.0, now=now)
    assert isinstance(wait, RetryWait) and 120.0 <= wait.seconds <= 120.0 * 1.1
    assert isinstance(policy.plan(3, rng, None), RetryWait)
    assert policy.plan(8, rng, None) == GiveUp(8)
    # Even after the retries are used, a long Retry-After says when to come back.
    assert isinstance(policy.plan(8, rng, 500.0), ResumeLater)
    with pytest.raises(ValueError):
        BackoffPolicy(max_retry_after_s=0.0)


def test_transport_stops_at_once_on_a_retry_after_beyond_the_cap() -> None:
    limited = BackendError(Retry("rate_limit", after_s=86400.0, detail="HTTP 429"))
    transport = Transport(TimedBackend([limited]), limit=2, policy=BackoffPolicy())
    started = time.monotonic()
    with pytest.raises(TransportStop) as caught:
        asyncio.run(transport.send(ONE))
    assert time.monotonic() - started < 5.0
    stop = caught.value
    assert stop.reason == "retry-after" and transport.halted
    assert "asked to wait 86400 s" in stop.message and "UTC" in stop.message
    assert transport.stats.stop_reason == "retry-after"


def test_collector_ends_with_one_line_on_a_retry_after_beyond_the_cap() -> None:
    def script(req: ChatRequest, n: int) -> ChatResult:
        raise BackendError(Retry("rate_limit", after_s=3600.0))

    with pytest.raises(ConfigError, match="asked to wait 3600 s") as caught:
        _collect(script, slot_grid([1, 2], [0], 1))
    assert "run the same command again then" in str(caught.value)


def test_a_pause_shows_in_the_progress_display() -> None:
    now = time.monotonic()
    assert pause_note(TrafficStats(paused_until=now + 12.4, pause_reason="rate limit"), now) == (
        "paused 12 s (rate limit)"
    )
    assert pause_note(TrafficStats(paused_until=now + 0.2, pause_reason="rate limit"), now) == ""
    # The transport records the pause before it waits; the display shows it.
    seen: list[str] = []
    stats = CollectStats()
    limited = BackendError(Retry("rate_limit", after_s=1.5, detail="HTTP 429"))
    transport = Transport(
        TimedBackend([limited, _text("2")]),
        limit=1,
        policy=FAST,
        stats=stats,
        on_update=lambda: seen.append(stats.pause_note()),
    )
    assert asyncio.run(transport.send(ONE)) is not None
    assert "paused 2 s (rate limit)" in seen or "paused 1 s (rate limit)" in seen
    stream = io.StringIO()
    display = ProgressDisplay("r1", total=10, mode="plain", stream=stream)
    stats.paused_until, stats.finished = time.monotonic() + 30.0, None
    assert display.line(stats).endswith("paused 30 s (rate limit)")
    display.update(stats)  # a pause is said at once in a plain log
    assert "paused 30 s (rate limit)" in stream.getvalue()

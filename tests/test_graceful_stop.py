"""A graceful stop (Ctrl-C once, :meth:`Collector.stop_sending`) against waits and a real server.

``Transport.stop_sending`` starts nothing new, lets the requests the server is
answering finish (they are stored), and wakes at once every request that waits
out a backoff or Retry-After pause, or waits for a window slot: those end with
the stop, unstored, and a resume asks them. The collector tests run against the
loopback HTTP server; nothing here waits out the 30 s Retry-After it sends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from persona_collapse.backends import (
    Backend,
    BackendError,
    ChatRequest,
    ChatResult,
    Retry,
    create_backend,
)
from persona_collapse.collect import (
    BackoffPolicy,
    CollectConfig,
    Collector,
    CollectStats,
    Slot,
    Transport,
    TransportStop,
    plan_slots,
    request_seed,
)
from persona_collapse.instruments import load_instrument
from persona_collapse.loopback import FaultConfig, LoopbackServer, draw_faults
from persona_collapse.simulate import SimulatedRespondent, VariantParams
from persona_collapse.store import ResponseStore, RunInfo

MFQ = load_instrument("mfq30")
ONE = ChatRequest(messages=[{"role": "user", "content": "Rate it."}], temperature=0.1, max_tokens=1)
#: The whole stopped run must end within this (it ends about 2 s after the stop; the
#: Retry-After the server sends is 30 s, so a stop that waits it out times out here).
FINISH_S = 10.0

# -- the transport alone (scripted backend) -------------------------------------------


@dataclass
class HeldBackend:
    """A 429 with ``Retry-After: 30`` for request 0; requests 1.. wait for ``release``."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        number = self.calls
        self.calls += 1
        if number == 0:
            raise BackendError(Retry("rate_limit", after_s=30.0, detail="HTTP 429"))
        await self.release.wait()
        return ChatResult(text="3", prompt_tokens=100, completion_tokens=1)


def test_stop_sending_wakes_a_retry_after_wait_and_a_window_wait_at_once() -> None:
    """One request sleeps out a 30 s Retry-After, one waits for the pause the 429 put on
    the window: the stop ends both at once with ``interrupted``; nothing more is sent."""
    backend = HeldBackend()
    transport = Transport(backend, limit=2, policy=BackoffPolicy(max_retry_after_s=120.0))

    async def main() -> tuple[list[BaseException | ChatResult | None], int]:
        sleeping = asyncio.ensure_future(transport.send(ONE))
        while transport.stats.retries == 0:  # the 429 came: its Retry-After is waited out
            await asyncio.sleep(0)
        waiting = asyncio.ensure_future(transport.send(ONE))  # held by the 30 s window pause
        await asyncio.sleep(0.05)
        assert not sleeping.done() and not waiting.done()
        in_flight = transport.stop_sending()
        both = asyncio.gather(sleeping, waiting, return_exceptions=True)
        return list(await asyncio.wait_for(both, 5.0)), in_flight

    results, in_flight = asyncio.run(main())
    assert in_flight == 0
    for result in results:
        assert isinstance(result, TransportStop) and result.reason == "interrupted"
    assert backend.calls == 1  # nothing reached the backend after the 429
    assert not transport.halted and transport.stats.stop_reason == "interrupted"
    assert transport.stats.requests == 0  # a woken request is never counted as answered
    assert transport.stats.paused_until == 0.0  # the progress line shows no pause any more


def test_stop_sending_lets_the_answer_in_flight_arrive_and_refuses_new_requests() -> None:
    backend = HeldBackend(calls=1)  # no 429: every request waits for ``release``

    async def main() -> tuple[ChatResult | None, int, BaseException | None]:
        transport = Transport(backend, limit=2)
        answered = asyncio.ensure_future(transport.send(ONE))
        while backend.calls < 2:
            await asyncio.sleep(0)
        in_flight = transport.stop_sending()
        refused: BaseException | None = None
        try:
            await transport.send(ONE)
        except TransportStop as stop:
            refused = stop
        backend.release.set()
        return await asyncio.wait_for(answered, 5.0), in_flight, refused

    result, in_flight, refused = asyncio.run(main())
    assert result is not None and result.text == "3"
    assert in_flight == 1
    assert isinstance(refused, TransportStop) and refused.reason == "interrupted"
    assert backend.calls == 2


@dataclass
class FailingLater:
    """Every request waits for ``release``, then fails with a 503 (a transport retry)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.calls += 1
        await self.release.wait()
        raise BackendError(Retry("transient", detail="HTTP 503"))


def test_a_request_in_flight_that_fails_after_the_stop_is_not_retried() -> None:
    backend = FailingLater()
    transport = Transport(backend, limit=1, policy=BackoffPolicy(base_s=30.0, cap_s=30.0))

    async def main() -> BaseException | ChatResult | None:
        sent = asyncio.ensure_future(transport.send(ONE))
        while backend.calls == 0:
            await asyncio.sleep(0)
        transport.stop_sending()
        backend.release.set()
        (result,) = await asyncio.wait_for(asyncio.gather(sent, return_exceptions=True), 5.0)
        return result

    result = asyncio.run(main())
    assert isinstance(result, TransportStop) and result.reason == "interrupted"
    assert backend.calls == 1 and transport.stats.retries == 0 and not transport.halted


# -- the collector against the loopback server -----------------------------------------

#: Requests 0-3 are answered at once, request 4 after 2 s (``hang_s``; the client's
#: timeout is 60 s), request 5 gets a 429 with ``Retry-After: 30``. With two workers
#: the 429 comes while request 4 is being answered, whoever sends which.
FAULTS = FaultConfig(rate_limit_rate=0.3, timeout_rate=0.3, retry_after_s=30.0, hang_s=2.0, seed=50)
SLOTS = [Slot(0, item, rep) for item in range(1, 6) for rep in (1, 2)]
SEED = 7
RUN = "stopped"
PERSONAS = {0: "A retired schoolteacher who volunteers at the local library."}


def test_the_fault_script_is_what_the_tests_say() -> None:
    kinds = [draw_faults(FAULTS, n).kind for n in range(6)]
    assert kinds == ["none"] * 4 + ["timeout", "rate_limit"]


@dataclass
class Stopped:
    """What the stopped session saw: its stats, the answers in flight ``stop_sending``
    reported, the slots the server was asked for (by request seed) and how many
    requests had reached the server when the run returned."""

    stats: CollectStats
    in_flight: int
    asked: list[Slot]
    requests_at_return: int


def _server() -> LoopbackServer:
    steady = SimulatedRespondent(VariantParams(name="steady", non_digit_rate=0.0), seed=1)
    return LoopbackServer(steady, faults=FAULTS, keep_requests=True)


def _asked(server: LoopbackServer) -> list[Slot]:
    """The slot of every chat request the server received (first attempts only)."""
    by_seed = {request_seed(SEED, slot, 0): slot for slot in SLOTS}
    return [by_seed[int(body["seed"])] for body in server.stats.bodies]


def _backend(server: LoopbackServer) -> Backend:
    return create_backend("openai/sim-steady", base_url=server.base_url, api_key="sk-test-k")


def _collector(backend: Backend, store: ResponseStore, slots: list[Slot]) -> Collector:
    config = CollectConfig(concurrency=2, seed=SEED, policy=BackoffPolicy(max_retry_after_s=120.0))
    return Collector(backend, store, RUN, MFQ, slots, config, personas=PERSONAS)


async def _stop_while_paused(server: LoopbackServer, store: ResponseStore) -> Stopped:
    """Run the collector over ``SLOTS``; stop it once a request waits out the 30 s
    Retry-After while another is being answered; the run must end well before then."""
    backend = _backend(server)
    collector = _collector(backend, store, SLOTS)
    task = asyncio.ensure_future(collector.run())
    deadline = time.monotonic() + 30
    while not (
        collector.stats.paused_until > time.monotonic() + 10 and server.stats.in_flight == 1
    ):
        assert not task.done() and time.monotonic() < deadline, "no Retry-After pause came"
        await asyncio.sleep(0.01)
    in_flight = collector.stop_sending()
    try:
        stats = await asyncio.wait_for(task, FINISH_S)
    finally:
        await backend.aclose()
    return Stopped(stats, in_flight, _asked(server), server.stats.requests)


@pytest.fixture
def stopped(tmp_path: Path) -> Iterator[tuple[Stopped, LoopbackServer, ResponseStore]]:
    with _server() as server, ResponseStore(tmp_path / "stop.db") as store:
        store.create_run(RunInfo(run_id=RUN, model="openai/sim-steady", backend="openai"))
        result = asyncio.run(_stop_while_paused(server, store))
        yield result, server, store


def test_a_request_waiting_out_a_retry_after_ends_at_once_unstored(
    stopped: tuple[Stopped, LoopbackServer, ResponseStore],
) -> None:
    run, _, store = stopped
    stored = store.completed_slots(RUN)
    limited = run.asked[5]  # the request answered 429
    assert limited.key not in stored  # never stored as data
    assert {s.key for s in run.asked[:4]} <= stored  # the answers before the stop
    st = run.stats
    assert st.stop_reason == "interrupted"
    assert st.done == len(stored) == 5 and st.requests == 5 and st.rate_limited == 1
    assert st.missing == 0 and st.in_flight == 0


def test_the_answer_in_flight_at_the_stop_is_stored(
    stopped: tuple[Stopped, LoopbackServer, ResponseStore],
) -> None:
    run, _, store = stopped
    assert run.in_flight == 1
    assert run.asked[4].key in store.completed_slots(RUN)  # answered 2 s after the stop


def test_no_request_reaches_the_server_after_the_stop(
    stopped: tuple[Stopped, LoopbackServer, ResponseStore],
) -> None:
    run, server, _ = stopped
    assert run.requests_at_return == len(run.asked) == 6  # 4 answered, 1 in flight, the 429
    time.sleep(0.2)
    assert server.stats.requests == 6
    assert len(set(run.asked)) == 6  # and nothing was asked twice


def test_a_resume_asks_exactly_the_slots_the_stop_left(
    stopped: tuple[Stopped, LoopbackServer, ResponseStore],
) -> None:
    _, server, store = stopped
    server.set_faults(FaultConfig())
    server.stats.reset()
    done = store.completed_slots(RUN)
    missing = plan_slots(range(1, 6), [0], 2, done=done)
    assert len(missing) == len(SLOTS) - 5

    async def resume() -> CollectStats:
        backend = _backend(server)
        try:
            return await asyncio.wait_for(_collector(backend, store, missing).run(), 30)
        finally:
            await backend.aclose()

    stats = asyncio.run(resume())
    asked = _asked(server)
    assert sorted(asked) == sorted(missing)  # no slot lost, none asked twice
    assert stats.done == len(missing) and stats.already_stored == 0 and stats.stop_reason is None
    assert store.completed_slots(RUN) == {s.key for s in SLOTS}
    assert store.count_responses(RUN) == len(SLOTS)

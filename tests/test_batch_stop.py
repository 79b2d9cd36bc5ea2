"""A graceful stop of a batch run (:meth:`BatchCollector.stop_sending`) at each phase.

Against the loopback server's OpenAI Batch API (the official SDK on
127.0.0.1). A stop submits no further batch, wakes a poll sleep at once (the
poll interval here is 30 s, so a stop that sleeps it out times out), and
leaves every batch in flight in the store, open, so a resume adopts it: the
resumed run creates no batch for the stopped one's requests (none paid twice)
and ends with the full grid, each slot once. Answers are SIMULATED.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from persona_collapse.backends import Backend, BatchLimits, create_backend
from persona_collapse.collect import CollectConfig, plan_slots
from persona_collapse.collect._batch import BatchCollector
from persona_collapse.collect._batch_stats import BatchStats
from persona_collapse.instruments import load_instrument
from persona_collapse.loopback import BatchScript, LoopbackServer
from persona_collapse.simulate import SimulatedRespondent, VariantParams
from persona_collapse.store import BatchLedger, ResponseStore, RunInfo

from .helpers import batch_persona_file, cli_process, interrupt, simulated_kill

KEY = "sk-test-batch-stop-0123456789"
RUN = "batch-stop"
MFQ = load_instrument("mfq30")
PERSONAS = {0: "A retired schoolteacher.", 1: "A pirate captain."}
SLOTS = plan_slots(MFQ.item_ids.tolist(), list(PERSONAS), 1)
POLL_S = 30.0
#: A stopped run must return within this; one that sleeps out a poll interval does not.
FINISH_S = 5.0


def _server() -> LoopbackServer:
    steady = SimulatedRespondent(VariantParams(name="steady", non_digit_rate=0.0), seed=1)
    return LoopbackServer(steady)


def _backend(srv: LoopbackServer) -> Backend:
    return create_backend("openai/sim-steady", base_url=srv.base_url, api_key=KEY)


def _collector(backend: Backend, store: ResponseStore, poll_s: float = POLL_S) -> BatchCollector:
    done = store.completed_slots(RUN)
    slots = [s for s in SLOTS if (s.persona_id, s.item_id, s.repetition) not in done]
    config = CollectConfig(seed=7)
    return BatchCollector(backend, store, RUN, MFQ, slots, config, personas=PERSONAS, poll_s=poll_s)


async def _until(check: Callable[[], bool], task: asyncio.Future[Any]) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert not task.done(), task.result()
        assert time.monotonic() < deadline, "the phase to stop in never came"
        await asyncio.sleep(0.01)


async def _stopped_run(
    srv: LoopbackServer, store: ResponseStore, when: Callable[[BatchCollector], Awaitable[int]]
) -> tuple[BatchStats, int]:
    """Run a collector, ``when`` stops it (returns what ``stop_sending`` said); the run must
    return within :data:`FINISH_S` of the stop."""
    backend = _backend(srv)
    collector = _collector(backend, store)
    try:
        in_flight = await when(collector)
    finally:
        await backend.aclose()
    return collector.stats, in_flight


async def _resume(srv: LoopbackServer, store: ResponseStore) -> BatchStats:
    for batch in srv.batches.batches.values():  # the stopped run's batches end now
        batch.polls_left = 0
    srv.batches.set_script(BatchScript(polls=0))
    backend = _backend(srv)
    try:
        return await _collector(backend, store, poll_s=0.01).run()
    finally:
        await backend.aclose()


def _complete(store_path: Path) -> None:
    with sqlite3.connect(store_path) as conn:
        rows = conn.execute(
            "SELECT persona_id, item_id, repetition FROM responses WHERE run_id = ?", (RUN,)
        ).fetchall()
    assert len(rows) == len(SLOTS) == len(set(rows))


def _open_store(tmp_path: Path) -> ResponseStore:
    store = ResponseStore(tmp_path / "stop.db")
    store.create_run(RunInfo(run_id=RUN, model="openai/sim-steady", backend="openai"))
    return store


def test_a_stop_while_polling_returns_at_once_and_the_resume_adopts_the_batch(
    tmp_path: Path,
) -> None:
    async def while_polling(collector: BatchCollector) -> int:
        task = asyncio.ensure_future(collector.run())
        # Created and polled once: the run sleeps out its 30 s poll interval now.
        await _until(lambda: "in_progress" in collector.stats.batches.values(), task)
        await asyncio.sleep(0.1)
        in_flight = collector.stop_sending()
        await asyncio.wait_for(task, FINISH_S)
        return in_flight

    with _server() as srv, _open_store(tmp_path) as store:
        srv.batches.set_script(BatchScript(polls=-1))
        stats, in_flight = asyncio.run(_stopped_run(srv, store, while_polling))
        assert in_flight == 0 and stats.stop_reason == "interrupted"
        assert srv.batches.created == 1 and store.count_responses(RUN) == 0
        assert len(BatchLedger(store).open_jobs(RUN)) == 1  # recorded, to be adopted
        resumed = asyncio.run(_resume(srv, store))
        assert resumed.adopted == 1 and resumed.created == 0
        assert srv.batches.created == 1 and srv.batches.lines == len(SLOTS)
    _complete(tmp_path / "stop.db")


def test_a_stop_between_the_batches_of_a_round_submits_no_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona_collapse.backends._openai_batch import OpenAIBatchAPI

    monkeypatch.setattr(OpenAIBatchAPI, "limits", BatchLimits(10, 10**9))  # 6 batches a round

    async def after_the_first_submit(collector: BatchCollector) -> int:
        submit = collector.api.submit
        stopped: list[int] = []

        async def submit_then_stop(*args: Any, **kw: Any) -> str:
            batch_id = await submit(*args, **kw)
            if not stopped:
                stopped.append(collector.stop_sending())
            return batch_id

        monkeypatch.setattr(collector.api, "submit", submit_then_stop)
        await asyncio.wait_for(collector.run(), FINISH_S)
        return stopped[0]

    with _server() as srv, _open_store(tmp_path) as store:
        srv.batches.set_script(BatchScript(polls=0))
        stats, _ = asyncio.run(_stopped_run(srv, store, after_the_first_submit))
        assert stats.stop_reason == "interrupted"
        assert srv.batches.created == 1 == len(BatchLedger(store).jobs(RUN))
        assert store.count_responses(RUN) == 0  # stopped: its result is not read now
        resumed = asyncio.run(_resume(srv, store))
        assert resumed.adopted == 1 and resumed.created == 5
        assert srv.batches.lines == len(SLOTS)  # every request sent once
    _complete(tmp_path / "stop.db")


def test_a_stop_while_results_download_stores_them_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch ended and its results are on the way: the stop says how many answers are in
    flight (so ``GracefulStop`` waits for them instead of cancelling), and they are stored."""

    async def while_downloading(collector: BatchCollector) -> int:
        results = collector.api.results
        reading, release = asyncio.Event(), asyncio.Event()

        async def held_results(batch_id: str) -> Any:
            reading.set()
            await release.wait()
            return await results(batch_id)

        monkeypatch.setattr(collector.api, "results", held_results)
        task = asyncio.ensure_future(collector.run())
        await _until(reading.is_set, task)
        in_flight = collector.stop_sending()
        release.set()
        await asyncio.wait_for(task, FINISH_S)
        return in_flight

    with _server() as srv, _open_store(tmp_path) as store:
        srv.batches.set_script(BatchScript(polls=0))
        stats, in_flight = asyncio.run(_stopped_run(srv, store, while_downloading))
        assert in_flight == len(SLOTS) and stats.stop_reason == "interrupted"
        assert store.count_responses(RUN) == len(SLOTS) == stats.done
        assert srv.batches.created == 1 and BatchLedger(store).open_jobs(RUN) == []
    _complete(tmp_path / "stop.db")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_while_the_cli_polls_stops_at_once_and_the_resume_adopts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: signal.Signals
) -> None:
    """``run --batch`` through the real CLI, stopped by one signal during a 30 s poll sleep:
    exit 130 within seconds, no traceback, the batch stays open in the store; the same
    command again adopts it (no batch created) and fills the grid, each slot once."""
    persona_file = batch_persona_file(tmp_path, monkeypatch, KEY)
    store = tmp_path / "cli.db"
    extra_env = {"OPENAI_API_KEY": KEY, "PYTHONPATH": os.pathsep.join(sys.path)}
    with _server() as srv:
        srv.batches.set_script(BatchScript(polls=-1))
        argv = [
            "run", "openai/sim-steady",
            "--base-url", srv.base_url, "--store", str(store), "--personas", str(persona_file),
            "--n-personas", "2", "--reps", "1", "--quiet", "--batch", "--batch-poll", "30",
        ]  # fmt: skip
        with cli_process(argv, env=extra_env) as proc:
            deadline = time.monotonic() + 60
            while srv.batches.created == 0:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.02)
            time.sleep(1.0)  # created, stored and polled: asleep for 30 s now
            _, err, waited = interrupt(proc, signum)
        assert proc.returncode == 130 and "Traceback" not in err, err
        assert "Interrupted; run the same command again to resume" in err, err
        assert waited < FINISH_S, waited
        with ResponseStore(store) as opened:
            (run_id,) = [r.run_id for r in opened.list_runs()]
            assert len(BatchLedger(opened).open_jobs(run_id)) == 1
            assert opened.count_responses(run_id) == 0
        for batch in srv.batches.batches.values():
            batch.polls_left = 0
        srv.batches.set_script(BatchScript(polls=0))
        done = subprocess.run(
            [sys.executable, "-m", "persona_collapse", *argv],
            env={**os.environ, **extra_env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert srv.batches.created == 1 and srv.batches.lines == 2 * 30
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT persona_id, item_id, repetition FROM responses").fetchall()
    assert len(rows) == 2 * 30 == len(set(rows))


def test_a_kill_after_the_progress_is_saved_counts_no_fault_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed just after a read batch's slot progress is written: the resume must not read
    that batch again, or its faulted lines count a second fault (stored in the rows'
    ``transport_retries``)."""
    from persona_collapse.collect import RunOptions, run_collection
    from persona_collapse.loopback import LineFaults

    persona_file = batch_persona_file(tmp_path, monkeypatch, KEY)
    store = tmp_path / "kill.db"
    save = BatchLedger.save_progress
    killed: list[bool] = []

    def save_then_die(self: BatchLedger, *args: Any, **kw: Any) -> None:
        save(self, *args, **kw)
        if not killed:
            killed.append(True)
            raise KeyboardInterrupt

    with _server() as srv:
        srv.batches.set_script(BatchScript(polls=0, lines=[LineFaults(null=3)]))
        options = RunOptions.build(
            "openai/sim-steady", base_url=srv.base_url, store=str(store),
            personas=str(persona_file), n_personas=2, reps=1, quiet=True, batch=True,
            batch_poll_s=0.01,
        )  # fmt: skip
        with monkeypatch.context() as m:
            m.setattr(BatchLedger, "save_progress", save_then_die)
            with simulated_kill():
                run_collection(options)
        run_collection(options)
        assert srv.batches.created == 2 and srv.batches.lines == 2 * 30 + 3
    with sqlite3.connect(store) as conn:
        extras = [json.loads(e) for (e,) in conn.execute("SELECT extra FROM responses")]
    assert len(extras) == 2 * 30
    assert sum(e.get("transport_retries", 0) for e in extras) == 3

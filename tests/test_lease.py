"""One writer per run: the lease in the store.

A second writer of a live run stops with one line naming the holder; a stale
lease (holder's process gone, or heartbeat too old) is taken over; the lease
is released at the end, also after an error; two concurrent ``run`` processes
on one run id ask every slot exactly once.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from persona_collapse.loopback import FaultConfig, LoopbackServer
from persona_collapse.simulate import SimulatedRespondent
from persona_collapse.store import LEASE_STALE_S, LeaseHeldError, ResponseStore, RunLease

from .helpers import run_cli

PERSONAS = [f"Persona number {i}, with a life of their own." for i in range(6)]
N_ITEMS = 30
FAKE_KEY = "sk-test-SECRET-lease-0123456789"
PROBE = "Reply with the digit 0."  # the startup check's prompt


@pytest.fixture
def persona_file(tmp_path: Path) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


def _leases(store: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(store, timeout=30) as conn:
        return list(conn.execute("SELECT run_id, pid, host FROM run_leases"))


def _plant(store: Path, run_id: str, *, pid: int, host: str, heartbeat: float) -> None:
    """A lease row as another writer would have left it."""
    ResponseStore(store).close()
    with sqlite3.connect(store, timeout=30) as conn:
        conn.execute(
            "INSERT INTO run_leases VALUES (?, ?, ?, 'other-token', '2026-01-01T00:00:00+00:00', ?)",
            (run_id, pid, host, heartbeat),
        )


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


def _host() -> str:
    import socket

    return socket.gethostname() or "localhost"


# -- the lease itself --------------------------------------------------------------------


def test_a_held_lease_refuses_a_second_writer_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with ResponseStore(path) as first, ResponseStore(path) as second:
        held = RunLease(first, "r1").acquire()
        with pytest.raises(LeaseHeldError) as info:
            RunLease(second, "r1").acquire()
        message = str(info.value)
        assert "\n" not in message
        assert f"pid {os.getpid()}" in message and _host() in message and "since" in message
        assert "run the same command again" in message
        RunLease(second, "r2").acquire().release()  # another run id is free
        held.release()
        RunLease(second, "r1").acquire().release()  # released: free again
    assert _leases(path) == []


def test_a_lease_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    dead = _dead_pid()
    _plant(path, "r1", pid=dead, host=_host(), heartbeat=time.time())
    note = io.StringIO()
    with ResponseStore(path) as store:
        lease = RunLease(store, "r1", note=note).acquire()
        assert lease.taken_over is not None and lease.taken_over.pid == dead
        assert _leases(path) == [("r1", os.getpid(), _host())]
        lease.release()
    assert f"pid {dead}" in note.getvalue() and note.getvalue().count("\n") == 1


def test_a_silent_lease_is_taken_over_and_a_fresh_one_on_another_host_is_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    _plant(path, "old", pid=1, host="elsewhere", heartbeat=time.time() - LEASE_STALE_S - 5)
    _plant(path, "fresh", pid=1, host="elsewhere", heartbeat=time.time())
    with ResponseStore(path) as store:
        RunLease(store, "old").acquire().release()
        with pytest.raises(LeaseHeldError, match="pid 1 on host elsewhere"):
            RunLease(store, "fresh").acquire()


def test_the_heartbeat_runs_while_the_work_does_and_a_lost_lease_stops_it(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with ResponseStore(path) as store:
        lease = RunLease(store, "r", heartbeat_s=0.05).acquire()
        first = lease.holder()
        assert first is not None
        assert asyncio.run(lease.keep_while(asyncio.sleep(0.3, result="done"))) == "done"
        later = lease.holder()
        assert later is not None and later.heartbeat > first.heartbeat

        cancelled = []

        async def work() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        async def steal() -> None:
            await asyncio.sleep(0.1)
            with sqlite3.connect(path) as conn:
                conn.execute("UPDATE run_leases SET token = 'thief'")

        async def both() -> None:
            thief = asyncio.create_task(steal())
            try:
                await lease.keep_while(work())
            finally:
                await thief

        with pytest.raises(LeaseHeldError, match="taken over"):
            asyncio.run(both())
        assert cancelled == [True]
        lease.release()  # not held any more: the thief's row stays
    assert len(_leases(path)) == 1


# -- the lease in a run --------------------------------------------------------------------


def _argv(
    base_url: str, store: Path, persona_file: Path, run_id: str, n: int, reps: int
) -> list[str]:
    return [
        "run",
        "openai/sim-base",
        "--base-url",
        base_url,
        "--store",
        str(store),
        "--run-id",
        run_id,
        "--personas",
        str(persona_file),
        "--n-personas",
        str(n),
        "--reps",
        str(reps),
        "--quiet",
    ]


def test_a_run_whose_lease_is_held_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path
) -> None:
    store = tmp_path / "s.db"
    _plant(store, "busy", pid=os.getpid(), host=_host(), heartbeat=time.time())
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        result = run_cli(capsys, *_argv(srv.base_url, store, persona_file, "busy", 2, 1))
    assert result.status == 2 and result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err
    assert "busy" in lines[0] and f"pid {os.getpid()}" in lines[0] and "since" in lines[0]
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0
    # a finished run leaves no lease behind
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        ok = run_cli(capsys, *_argv(srv.base_url, store, persona_file, "done", 2, 1))
    assert ok.status == 0, ok.err
    assert [r[0] for r in _leases(store)] == ["busy"]


@pytest.mark.parametrize("failure", [LeaseHeldError("disk trouble"), KeyboardInterrupt()])
def test_a_run_that_fails_or_is_interrupted_releases_its_lease(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: BaseException,
) -> None:
    store = tmp_path / "s.db"
    seen: list[object] = []

    def fail(self: ResponseStore, run_id: str) -> set[tuple[int, int, int]]:
        seen.extend(_leases(store))  # the lease is held while the run plans its slots
        raise failure

    monkeypatch.setattr(ResponseStore, "completed_slots", fail)
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        result = run_cli(capsys, *_argv(srv.base_url, store, persona_file, "r", 2, 1))
    assert result.status != 0
    assert seen == [("r", os.getpid(), _host())]
    assert _leases(store) == []


def test_two_concurrent_runs_on_one_run_id_ask_every_slot_once(
    tmp_path: Path, persona_file: Path
) -> None:
    store = tmp_path / "two.db"
    n, reps = 3, 2
    total = n * N_ITEMS * reps
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY}
    server = LoopbackServer(
        SimulatedRespondent("base", seed=1), faults=FaultConfig(latency_s=0.1), keep_requests=True
    )
    with server as srv:
        argv = [
            sys.executable,
            "-m",
            "persona_collapse",
            *_argv(srv.base_url, store, persona_file, "shared", n, reps),
            "--concurrency",
            "2",
        ]

        def start() -> subprocess.Popen[str]:
            return subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )

        def asked() -> list[str]:
            return [
                json.dumps(r.body["messages"], sort_keys=True)
                for r in list(srv.stats.recorded)
                if r.path.endswith("/chat/completions")
                and isinstance(r.body, dict)
                and r.body["messages"][0]["content"] != PROBE
            ]

        first = start()
        procs = [first]
        try:
            deadline = time.monotonic() + 120
            while not asked() and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert first.poll() is None, "the first run ended before the second started"
            second = start()  # the first is collecting: it holds the lease
            procs.append(second)
            outputs = [p.communicate(timeout=300) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
        statuses = [p.returncode for p in procs]
        slots_asked = asked()
    assert statuses == [0, 2], outputs
    line = outputs[1][1].strip()
    assert "\n" not in line and "shared" in line and f"pid {first.pid}" in line, line
    assert "Traceback" not in line and FAKE_KEY not in line
    # every slot asked exactly once, by the lease holder (plus its retries of
    # answers without a digit, which the store counts in `failures`)
    with sqlite3.connect(store) as conn:
        stored, distinct, retried = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT persona_id || '-' || item_id || '-' || repetition), "
            "COALESCE(SUM(failures), 0) FROM responses WHERE run_id = 'shared'"
        ).fetchone()
    assert stored == distinct == total
    assert len(slots_asked) == total + retried
    assert _leases(store) == []

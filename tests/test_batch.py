"""``run --batch`` over the loopback server: the official SDKs' batch calls on 127.0.0.1.

Answers are SIMULATED (the loopback server's respondents).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from persona_collapse.collect import RunOptions, run_collection
from persona_collapse.errors import ConfigError
from persona_collapse.loopback import BatchScript, FaultConfig, LoopbackServer
from persona_collapse.simulate import SimulatedRespondent
from persona_collapse.store import BatchLedger

from .helpers import batch_persona_file, simulated_kill

KEY = "sk-test-batch-0123456789"


@pytest.fixture
def persona_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return batch_persona_file(tmp_path, monkeypatch, KEY)


def _options(srv: LoopbackServer, store: Path, personas: Path, **kw: object) -> RunOptions:
    base = dict(
        model="openai/sim-base",
        base_url=srv.base_url,
        store=str(store),
        personas=str(personas),
        n_personas=2,
        reps=2,
        quiet=True,
        batch=True,
        batch_poll_s=0.01,
    )
    base.update(kw)
    return RunOptions.build(**base)  # type: ignore[arg-type]


def _rows(store: Path) -> list[tuple[int, int, int, int, int]]:
    with sqlite3.connect(store) as conn:
        return conn.execute(
            "SELECT persona_id, item_id, repetition, rating, failures FROM responses"
        ).fetchall()


def test_sampled_batch_run_retries_non_digits_in_further_rounds(
    tmp_path: Path, persona_file: Path
) -> None:
    store = tmp_path / "b.db"
    with LoopbackServer(
        SimulatedRespondent("base", seed=1), faults=FaultConfig(non_digit_rate=0.2, seed=3)
    ) as srv:
        outcome = run_collection(_options(srv, store, persona_file))
        paths = dict(srv.stats.by_path)
        assert srv.batches.created >= 2
    rows = _rows(store)
    assert len(rows) == 2 * 30 * 2 == outcome.total_slots
    assert all(1 <= r[3] <= 6 or r[3] == 0 for r in rows)  # every slot holds a digit
    assert sum(r[4] for r in rows) > 0 and outcome.stats.failures > 0
    assert paths.get("/v1/chat/completions", 0) == 1  # only the start-up probe
    assert outcome.stats.round >= 2  # type: ignore[attr-defined]
    assert "batch discount saved" in outcome.summary()
    with sqlite3.connect(store) as conn:
        states = {r[0] for r in conn.execute("SELECT state FROM batch_jobs")}
        assert states == {"read"}
        assert conn.execute("SELECT COUNT(*) FROM batch_slots").fetchone()[0] == 0


def test_logprob_batch_run_sends_one_line_per_cell(tmp_path: Path, persona_file: Path) -> None:
    store = tmp_path / "lp.db"
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        run_collection(_options(srv, store, persona_file, method="logprobs", reps=1))
        assert srv.batches.created == 1
        assert srv.batches.lines == 2 * 30
    assert len(_rows(store)) == 60


def test_anthropic_batch_run(tmp_path: Path, persona_file: Path) -> None:
    store = tmp_path / "a.db"
    with LoopbackServer(
        SimulatedRespondent("base", seed=1), faults=FaultConfig(non_digit_rate=0.2)
    ) as srv:
        run_collection(
            _options(
                srv,
                store,
                persona_file,
                model="anthropic/sim-base",
                base_url=srv.anthropic_base_url,
                reps=1,
            )
        )
        assert srv.stats.by_path.get("/v1/messages", 0) == 1
        assert srv.batches.created >= 2
    assert len(_rows(store)) == 60


def test_failed_and_expired_batches_return_their_slots(tmp_path: Path, persona_file: Path) -> None:
    store = tmp_path / "f.db"
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        srv.batches.set_script(BatchScript(polls=1, fail=1, expire=1))
        outcome = run_collection(_options(srv, store, persona_file, reps=1))
        assert srv.batches.created >= 3
    assert len(_rows(store)) == 60
    assert sum(r[4] for r in _rows(store)) == outcome.stats.failures  # faults: no attempts
    assert outcome.stats.retries == 120


def test_a_killed_run_adopts_its_in_flight_batch(tmp_path: Path, persona_file: Path) -> None:
    store = tmp_path / "k.db"
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        srv.batches.set_script(BatchScript(polls=1_000_000))
        options = _options(srv, store, persona_file, reps=1, batch_poll_s=0.05)
        import threading
        import time

        def kill_when_created() -> None:
            while True:  # the batch is created and its id in the store: kill the run
                time.sleep(0.01)
                if not store.exists():
                    continue
                try:
                    with sqlite3.connect(store) as conn:
                        sql = "SELECT COUNT(*) FROM batch_jobs WHERE state != 'pending'"
                        if conn.execute(sql).fetchone()[0]:
                            break
                except sqlite3.Error:
                    continue
            import _thread

            _thread.interrupt_main()

        threading.Thread(target=kill_when_created, daemon=True).start()
        with simulated_kill():
            run_collection(options)
        assert srv.batches.created == 1 and len(_rows(store)) == 0
        srv.batches.set_script(BatchScript(polls=0))
        for batch in srv.batches.batches.values():
            batch.polls_left = 0
        outcome = run_collection(options)
        # The first batch is adopted, not created again; later batches only hold the
        # slots whose answer held no digit (the respondent's own non-digit answers).
        assert srv.batches.lines == 60 + outcome.stats.failures
        assert srv.batches.created == outcome.stats.round  # type: ignore[attr-defined]
        assert outcome.stats.adopted == 1  # type: ignore[attr-defined]
    rows = _rows(store)
    assert len(rows) == 60 == len({r[:3] for r in rows})


@pytest.mark.parametrize("model", ["sim/base", "hf/tiny"])
def test_batch_without_a_batch_api_is_refused_in_one_line(model: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RunOptions(model=model, batch=True)
    assert "\n" not in caught.value.message and "no" in caught.value.message


def _kill_after_create(monkeypatch: pytest.MonkeyPatch) -> None:
    """The orphan window: the provider accepted the batch, its id is not yet stored."""
    real = BatchLedger.resolve_pending
    calls = {"n": 0}

    def killed(self: BatchLedger, *args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(BatchLedger, "resolve_pending", killed)


def _finish_all(srv: LoopbackServer) -> None:
    srv.batches.set_script(BatchScript(polls=0))
    for batch in srv.batches.batches.values():
        batch.polls_left = 0


@pytest.mark.parametrize("list_errors", [0, 2], ids=["listing-ok", "listing-fails-twice"])
def test_openai_kill_between_create_and_store_adopts_by_input_file(
    tmp_path: Path, persona_file: Path, monkeypatch: pytest.MonkeyPatch, list_errors: int
) -> None:
    store = tmp_path / "o.db"
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        srv.batches.set_script(BatchScript(polls=3))
        options = _options(srv, store, persona_file, reps=1, method="logprobs")
        _kill_after_create(monkeypatch)
        with simulated_kill():
            run_collection(options)
        assert srv.batches.created == 1
        with sqlite3.connect(store) as conn:
            (state,) = conn.execute("SELECT state FROM batch_jobs").fetchone()
        assert state == "pending"  # the input file id is stored, the batch id is not
        _finish_all(srv)
        srv.batches.script.list_errors = list_errors  # a 503 listing is a read: sent again
        outcome = run_collection(options)
        assert srv.batches.script.list_errors == 0
        assert srv.batches.created == 1  # adopted from batches.list, not paid twice
        assert outcome.stats.adopted == 1  # type: ignore[attr-defined]
    rows = _rows(store)
    assert len(rows) == 60 == len({r[:3] for r in rows})


def test_openai_pending_upload_without_a_batch_creates_it_once(
    tmp_path: Path, persona_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "u.db"
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        options = _options(srv, store, persona_file, reps=1, method="logprobs")

        async def killed_create(*args: object, **kw: object) -> str:
            raise KeyboardInterrupt

        from persona_collapse.backends.sdk import OpenAIBatchAPI

        with monkeypatch.context() as m:
            m.setattr(OpenAIBatchAPI, "submit", killed_create)
            with simulated_kill():
                run_collection(options)
        assert srv.batches.created == 0
        run_collection(options)
        assert srv.batches.created == 1 and srv.batches.lines == 60
    assert len(_rows(store)) == 60


def test_anthropic_kill_between_create_and_store_adopts_by_count_and_time(
    tmp_path: Path, persona_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "an.db"
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        srv.batches.set_script(BatchScript(polls=3))
        options = _options(
            srv,
            store,
            persona_file,
            model="anthropic/sim-base",
            base_url=srv.anthropic_base_url,
            reps=1,
        )
        _kill_after_create(monkeypatch)
        with simulated_kill():
            run_collection(options)
        assert srv.batches.created == 1
        _finish_all(srv)
        outcome = run_collection(options)
        # Round 1 adopted; later batches hold only the slots without a digit.
        assert srv.batches.created == outcome.stats.round  # type: ignore[attr-defined]
        assert srv.batches.lines == 60 + outcome.stats.failures
    rows = _rows(store)
    assert len(rows) == 60 == len({r[:3] for r in rows})


def test_anthropic_ambiguous_orphan_is_named_on_stderr(
    tmp_path: Path,
    persona_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = tmp_path / "amb.db"
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        srv.batches.set_script(BatchScript(polls=3))
        options = _options(
            srv,
            store,
            persona_file,
            model="anthropic/sim-base",
            base_url=srv.anthropic_base_url,
            reps=1,
        )
        _kill_after_create(monkeypatch)
        with simulated_kill():
            run_collection(options)
        # Another batch of the same size created at the same time: no single match.
        twin = next(iter(srv.batches.batches.values()))
        srv.batches._new("anthropic", list(twin.lines))
        _finish_all(srv)
        capsys.readouterr()
        run_collection(options)
        err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "may have created a batch" in line]
    assert len(lines) == 1 and "messages.batches.list" in lines[0]
    assert len(_rows(store)) == 60


def test_sigkilled_cli_run_adopts_its_batch(tmp_path: Path, persona_file: Path) -> None:
    store = tmp_path / "sk.db"
    env = dict(os.environ, OPENAI_API_KEY=KEY, PYTHONPATH=os.pathsep.join(sys.path))
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        srv.batches.set_script(BatchScript(polls=1_000_000))
        cmd = [
            sys.executable, "-m", "persona_collapse", "run", "openai/sim-base",
            "--base-url", srv.base_url, "--store", str(store), "--personas", str(persona_file),
            "--n-personas", "2", "--reps", "1", "--method", "logprobs", "--quiet",
            "--batch", "--batch-poll", "0.2",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for _ in range(6000):  # until the batch id is in the store
                if proc.poll() is not None:
                    break
                time.sleep(0.02)
                try:
                    with sqlite3.connect(store) as conn:
                        sql = "SELECT COUNT(*) FROM batch_jobs WHERE state != 'pending'"
                        if conn.execute(sql).fetchone()[0]:
                            break
                except sqlite3.Error:
                    continue
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert srv.batches.created == 1
        srv.batches.set_script(BatchScript(polls=3))
        for batch in srv.batches.batches.values():
            batch.polls_left = 3
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert srv.batches.created == 1 and srv.batches.lines == 60
    rows = _rows(store)
    assert len(rows) == 60 == len({r[:3] for r in rows})

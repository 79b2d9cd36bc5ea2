"""``persona-collapse run`` end to end: the official OpenAI SDK against the real loopback server.

No SDK is mocked: requests go over HTTP on 127.0.0.1 to
:class:`persona_collapse.loopback.LoopbackServer`, whose answers are SIMULATED.
Grids are small (a few personas x 30 items x 2-3 repetitions).
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persona_collapse.instruments import load_instrument
from persona_collapse.loopback import FaultConfig, LoopbackServer
from persona_collapse.simulate import SimulatedRespondent, VariantParams

from .helpers import Result, cli_process, interrupt, run_cli

FAKE_KEY = "sk-test-SECRET-0123456789"
KEY_ENV = {"OPENAI_API_KEY": FAKE_KEY}
MODEL = "openai/sim-base"
N_ITEMS = 30
PROBE = "Reply with the digit 0."

PERSONAS = [
    "A retired schoolteacher who volunteers at the local library and bakes for neighbours.",
    "A competitive rock climber and software engineer who distrusts institutions.",
    "A devout farmer raising four children in a small rural community.",
    "A city council member focused on housing policy and {braces} in budgets.",
    "A young nurse working night shifts in an emergency department.",
    "A jazz musician who grew up moving between three countries.",
]


@pytest.fixture
def persona_file(tmp_path: Path) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    return FAKE_KEY


def _server(faults: FaultConfig | None = None, **kwargs: Any) -> LoopbackServer:
    return LoopbackServer(SimulatedRespondent("base", seed=1), faults=faults, **kwargs)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with _server(keep_requests=True) as srv:
        yield srv


def _run(
    capsys: pytest.CaptureFixture[str],
    base_url: str,
    store: Path,
    persona_file: Path,
    *extra: str,
    n: int = 5,
    reps: int = 2,
) -> Result:
    return run_cli(
        capsys,
        "run",
        MODEL,
        "--base-url",
        base_url,
        "--store",
        str(store),
        "--personas",
        str(persona_file),
        "--n-personas",
        str(n),
        "--reps",
        str(reps),
        "--quiet",
        *extra,
    )


def _rows(store: Path, run_id: str) -> list[tuple[int, int, int, int, int]]:
    with sqlite3.connect(store) as conn:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT persona_id, item_id, repetition, rating, failures FROM responses "
                "WHERE run_id = ? ORDER BY 1, 2, 3",
                (run_id,),
            )
        ]


def _count(store: Path, run_id: str | None = None) -> int:
    with sqlite3.connect(store, timeout=30) as conn:
        if run_id is None:
            return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        return int(
            conn.execute("SELECT COUNT(*) FROM responses WHERE run_id = ?", (run_id,)).fetchone()[0]
        )


def _grid(n: int, reps: int) -> set[tuple[int, int, int]]:
    return {(p, i, r) for p in range(n) for i in range(1, N_ITEMS + 1) for r in range(1, reps + 1)}


def _one_error_line(result: Result) -> str:
    assert result.status == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]


def _chat_bodies(server: LoopbackServer) -> list[dict[str, Any]]:
    """Recorded chat requests of the run (the startup probe left out)."""
    bodies = [
        r.body
        for r in server.stats.recorded
        if r.path.endswith("/chat/completions") and isinstance(r.body, dict)
    ]
    return [b for b in bodies if b["messages"][0]["content"] != PROBE]


# -- complete runs ------------------------------------------------------------------


def test_full_run_then_metrics(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    api_key: str,
    server: LoopbackServer,
) -> None:
    store = tmp_path / "runs.db"
    result = _run(capsys, server.base_url, store, persona_file)
    assert result.status == 0, result.err
    source = result.out.strip()
    assert source == f"{store}:sim-base_base_persona"
    assert "300 of 300 slots stored" in result.err
    rows = _rows(store, "sim-base_base_persona")
    assert {r[:3] for r in rows} == _grid(5, 2)
    assert all(0 <= r[3] <= 5 for r in rows)

    metrics = run_cli(capsys, "metrics", source, "--format", "json")
    assert metrics.status == 0, metrics.err
    doc = metrics.json()
    assert doc[0]["n_personas"] == 5 and doc[0]["n_items"] == N_ITEMS
    assert doc[0]["S"] > 0

    # The run record: settings without any key, protocol and persona hashes.
    with sqlite3.connect(store) as conn:
        settings, phash, pset = conn.execute(
            "SELECT settings, protocol_hash, persona_set_hash FROM runs"
        ).fetchone()
    recorded = json.loads(settings)
    assert recorded["temperature"] == 0.1 and recorded["reps"] == 2
    assert recorded["n_personas"] == 5 and recorded["max_attempts"] == 10
    assert len(phash) == 64 and len(pset) == 64

    # Every request carries a distinct seed: repetitions are never one cached answer.
    seeds = [b["seed"] for b in _chat_bodies(server)]
    assert len(seeds) >= 300 and len(set(seeds)) == len(seeds)

    # Running it again finds nothing to do.
    again = _run(capsys, server.base_url, store, persona_file)
    assert again.status == 0, again.err
    assert "0 this session" in again.err
    assert _count(store) == 300


def test_faults_still_fill_every_slot_exactly_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, api_key: str
) -> None:
    faults = FaultConfig(
        rate_limit_rate=0.10,
        retry_after_s=0.05,
        server_error_rate=0.05,
        timeout_rate=0.01,
        hang_s=3.0,
        non_digit_rate=0.05,
        malformed_rate=0.01,
        seed=7,
    )
    store = tmp_path / "faults.db"
    with _server(faults) as srv:
        result = _run(
            capsys, srv.base_url, store, persona_file, "--concurrency", "16", "--timeout", "0.5"
        )
        stats = srv.stats.snapshot()
    assert result.status == 0, result.err
    assert stats["faults"].get("rate_limit", 0) > 0
    assert stats["faults"].get("server_error", 0) > 0
    assert stats["faults"].get("timeout", 0) > 0
    rows = _rows(store, "sim-base_base_persona")
    assert len(rows) == 300
    assert {r[:3] for r in rows} == _grid(5, 2)
    assert all(0 <= r[3] <= 5 for r in rows)
    # Non-digit first tokens are protocol failures, transport errors are not.
    assert sum(r[4] for r in rows) >= stats["faults"].get("non_digit", 0) > 0


def test_self_mode_plans_items_times_reps(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    api_key: str,
    server: LoopbackServer,
) -> None:
    store = tmp_path / "self.db"
    result = _run(capsys, server.base_url, store, persona_file, "--self", reps=3)
    assert result.status == 0, result.err
    rows = _rows(store, "sim-base_base_self")
    assert len(rows) == N_ITEMS * 3
    assert {r[0] for r in rows} == {-1}
    inst = load_instrument("mfq30")
    expected = {inst.self_prompt(i) for i in range(1, N_ITEMS + 1)}
    bodies = _chat_bodies(server)
    assert all(
        b["messages"] == [{"role": "user", "content": b["messages"][0]["content"]}] for b in bodies
    )
    assert {b["messages"][0]["content"] for b in bodies} == expected


def test_prompts_are_byte_identical_to_the_instrument(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    api_key: str,
    server: LoopbackServer,
) -> None:
    store = tmp_path / "prompts.db"
    result = _run(capsys, server.base_url, store, persona_file, n=3, reps=2)
    assert result.status == 0, result.err
    inst = load_instrument("mfq30")
    expected = {inst.persona_prompt(i, p) for p in PERSONAS[:3] for i in range(1, N_ITEMS + 1)}
    bodies = _chat_bodies(server)
    for body in bodies:
        assert len(body["messages"]) == 1
        assert body["messages"][0]["role"] == "user"
        assert body["temperature"] == 0.1
        assert body["max_tokens"] in (1, 64)
    assert {b["messages"][0]["content"] for b in bodies} == expected
    # Byte-identical: compare the exact UTF-8 bytes, too.
    raw = {b["messages"][0]["content"].encode("utf-8") for b in bodies}
    assert raw == {e.encode("utf-8") for e in expected}


def test_logprob_method_asks_each_cell_once(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    api_key: str,
    server: LoopbackServer,
) -> None:
    store = tmp_path / "logprobs.db"
    result = _run(capsys, server.base_url, store, persona_file, "--method", "logprobs", n=4)
    assert result.status == 0, result.err
    bodies = _chat_bodies(server)
    assert len(bodies) == 4 * N_ITEMS
    inst = load_instrument("mfq30")
    suffix = inst.logprob_suffix
    for body in bodies:
        assert body["temperature"] == 1.0 and body["max_tokens"] == 1
        assert body["logprobs"] is True and body["top_logprobs"] == 20
        assert body["messages"][0]["content"].endswith(suffix)
    run_id = "sim-base_base_persona_logprobs"
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT rating, distribution, extra FROM responses WHERE run_id = ?", (run_id,)
        ).fetchall()
    assert len(rows) == 4 * N_ITEMS
    for rating, distribution, extra in rows:
        probs = json.loads(distribution)
        assert len(probs) == 6 and abs(sum(probs) - 1) < 1e-9
        assert rating == max(range(6), key=lambda k: probs[k])
        assert {"other_mass", "absent", "floor_mass"} <= set(json.loads(extra))
    metrics = run_cli(capsys, "metrics", f"{store}:{run_id}", "--format", "json")
    assert metrics.status == 0, metrics.err


# -- resuming -----------------------------------------------------------------------


def test_resume_with_other_temperature_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    api_key: str,
    server: LoopbackServer,
) -> None:
    store = tmp_path / "resume.db"
    first = _run(capsys, server.base_url, store, persona_file, n=2, reps=2)
    assert first.status == 0, first.err
    again = _run(capsys, server.base_url, store, persona_file, "--temperature", "0.7", n=2, reps=2)
    line = _one_error_line(again)
    assert "temperature" in line and "0.1" in line and "0.7" in line
    assert again.out == ""


def test_sigkill_mid_run_then_resume_fills_every_slot_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, api_key: str
) -> None:
    store = tmp_path / "killed.db"
    run_id = "killed"
    n, reps = 5, 3
    with _server(FaultConfig(latency_s=0.05)) as srv:
        argv = [
            sys.executable,
            "-m",
            "persona_collapse",
            "run",
            MODEL,
            "--base-url",
            srv.base_url,
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
            "--concurrency",
            "4",
        ]
        env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY}
        proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if store.exists() and _has_rows(store, 40):
                    break
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, "the run ended before it could be killed"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        killed_at = _count(store, run_id)
        assert 40 <= killed_at < n * N_ITEMS * reps

        result = run_cli(capsys, *argv[3:], "--quiet")
        assert result.status == 0, result.err
    with sqlite3.connect(store) as conn:
        total = conn.execute(
            "SELECT COUNT(*) FROM responses WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        distinct = conn.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT persona_id, item_id, repetition "
            "FROM responses WHERE run_id = ?)",
            (run_id,),
        ).fetchone()[0]
        pk = [r for r in conn.execute("PRAGMA table_info(responses)") if r[5] > 0]
    assert total == distinct == n * N_ITEMS * reps
    assert sorted((r[5], r[1]) for r in pk) == [
        (1, "run_id"),
        (2, "persona_id"),
        (3, "item_id"),
        (4, "repetition"),
    ]
    assert {r[:3] for r in _rows(store, run_id)} == _grid(n, reps)


@pytest.mark.parametrize(
    ("signum", "twice"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-twice", "sigterm"],
)
def test_ctrl_c_stops_cleanly_and_the_run_resumes(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    api_key: str,
    signum: signal.Signals,
    twice: bool,
) -> None:
    """Ctrl-C, and SIGTERM alike: the summary, exit 130, what arrived stays, resume fills the rest.

    Deterministic: after its first 41 requests (the probe and 40 answers) the
    server holds every request unanswered, so the run cannot finish before the
    signal arrives however slow or fast the machine is. The held answers never
    come: one signal stops after the grace period (STOP_GRACE_S, 10 s), a second
    one at once.
    """
    store = tmp_path / "interrupted.db"
    total = 4 * N_ITEMS * 2
    with _server(FaultConfig(hold_after=41)) as srv:
        argv = [
            "run",
            MODEL,
            "--base-url",
            srv.base_url,
            "--store",
            str(store),
            "--run-id",
            "interrupted",
            "--personas",
            str(persona_file),
            "--n-personas",
            "4",
            "--reps",
            "2",
            "--concurrency",
            "2",
        ]
        with cli_process(argv, cwd=tmp_path, env=KEY_ENV) as proc:
            deadline = time.monotonic() + 120
            # Both workers waiting on held requests: everything answered is committed.
            while time.monotonic() < deadline and proc.poll() is None and srv.stats.held < 2:
                time.sleep(0.05)
            assert proc.poll() is None, "the run ended before it could be interrupted"
            assert srv.stats.held == 2
            out, err, waited = interrupt(proc, *[signum] * (2 if twice else 1), gap_s=0.5)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert "Interrupted; run the same command again to resume" in err
        assert "waiting up to 10 s for the 2 answers in flight" in err, err
        assert waited < 8 if twice else waited >= 10, waited
        assert out.strip() == f"{store}:interrupted"
        stopped_at = _count(store, "interrupted")
        assert 1 <= stopped_at <= 40
        srv.set_faults(FaultConfig())
        resumed = run_cli(capsys, *argv, "--quiet")
        assert resumed.status == 0, resumed.err
    assert f"{total - stopped_at} this session" in resumed.err
    assert {r[:3] for r in _rows(store, "interrupted")} == _grid(4, 2)


def _request_keys(server: LoopbackServer) -> list[tuple[int, str]]:
    """(seed, prompt) of every chat request received, the probe left out: one per request asked."""
    return [(int(b["seed"]), b["messages"][-1]["content"]) for b in _chat_bodies(server)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_stop_stores_the_answers_in_flight_and_asks_nothing_twice(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    api_key: str,
    signum: signal.Signals,
) -> None:
    """SIGTERM or Ctrl-C: no new request starts, the answers in flight arrive and are stored,
    exit 130; the resume asks only the slots never asked, so requests paid == slots.

    Every answer takes 1 s at the server and one request answers one slot (no
    unparseable answers), so 8 requests are in flight when the signal arrives.
    """
    store = tmp_path / "stopped.db"
    n, reps = 2, 2
    steady = SimulatedRespondent(VariantParams(name="steady", non_digit_rate=0.0), seed=1)
    argv = [
        "run", MODEL, "--store", str(store), "--run-id", "stopped", "--personas",
        str(persona_file), "--n-personas", str(n), "--reps", str(reps), "--concurrency", "8",
    ]  # fmt: skip
    with LoopbackServer(steady, faults=FaultConfig(latency_s=1.0), keep_requests=True) as srv:
        with cli_process([*argv, "--base-url", srv.base_url], cwd=tmp_path, env=KEY_ENV) as proc:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if _has_rows(store, 16) and srv.stats.in_flight >= 8:
                    break
                time.sleep(0.02)
            assert proc.poll() is None, "the run ended before it could be stopped"
            out, err, waited = interrupt(proc, signum)
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "Interrupted" in err, err
        assert out.strip() == f"{store}:stopped"
        assert waited < 10, waited  # the answers in flight took about 1 s, not the whole grace
        asked_first = _request_keys(srv)
        stored_first = _count(store, "stopped")
        # every request the server received was answered and stored: none was thrown away
        assert stored_first == len(asked_first) == len(set(asked_first)), (stored_first, err)
        srv.set_faults(FaultConfig())
        resumed = run_cli(capsys, *argv, "--base-url", srv.base_url, "--quiet")
        assert resumed.status == 0, resumed.err
        asked = _request_keys(srv)
    slots = n * N_ITEMS * reps
    assert len(asked) == slots  # requests paid == slots
    assert len(set(asked)) == len(asked)  # requests paid twice after the stop: 0
    assert {r[:3] for r in _rows(store, "stopped")} == _grid(n, reps)


def test_sigterm_stops_verify_like_ctrl_c(tmp_path: Path) -> None:
    """``verify`` under SIGTERM: the exit status and line of Ctrl-C, no traceback."""
    argv = ["verify", MODEL, "--judge", MODEL, "--store", str(tmp_path / "verify.db"), "--quiet"]
    with (
        _server(FaultConfig(hold_after=2)) as srv,  # the two probes answered, then held
        cli_process(
            [*argv, "--base-url", srv.base_url, "--judge-base-url", srv.base_url],
            cwd=tmp_path,
            env=KEY_ENV,
        ) as proc,
    ):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and srv.stats.held < 1:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        _, err, _ = interrupt(proc, signal.SIGTERM)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err


def _has_rows(store: Path, at_least: int) -> bool:
    try:
        return _count(store) >= at_least
    except sqlite3.Error:
        return False  # tables not created yet


# -- transport faults never become data -------------------------------------------------

BROKEN_BODIES = {"malformed_rate": 0.1, "html_rate": 0.1, "error_body_rate": 0.1}


def _failures_by_slot(store: Path, run_id: str) -> dict[tuple[int, int, int], tuple[int, int]]:
    return {r[:3]: (r[3], r[4]) for r in _rows(store, run_id)}


@pytest.mark.parametrize("family", ["openai", "anthropic"])
def test_broken_200_bodies_are_retried_never_counted_as_failures(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    family: str,
) -> None:
    """30% of 200s are cut JSON, HTML pages or error objects: the data equal a clean run's.

    One repetition per cell, so each prompt is asked by one slot and the
    server's answers (seeded for OpenAI, by occurrence for Anthropic) do not
    depend on the order concurrent slots arrive in.
    """
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    stores = {}
    for label, faults in (("clean", FaultConfig()), ("broken", FaultConfig(**BROKEN_BODIES))):
        store = stores[label] = tmp_path / f"{label}.db"
        with _server(faults) as srv:
            base = srv.base_url if family == "openai" else srv.anthropic_base_url
            result = run_cli(
                capsys,
                "run",
                f"{family}/sim-base",
                "--base-url",
                base,
                "--store",
                str(store),
                "--run-id",
                "r",
                "--personas",
                str(persona_file),
                "--n-personas",
                "4",
                "--reps",
                "1",
                "--concurrency",
                "8",
                "--quiet",
            )
            stats = srv.stats.snapshot()
        assert result.status == 0, result.err
        if label == "broken":
            assert {"malformed", "html", "error_body"} <= set(stats["faults"])
            assert sum(stats["faults"].values()) > 30
    clean, broken = (_failures_by_slot(stores[k], "r") for k in ("clean", "broken"))
    assert set(broken) == _grid(4, 1)
    assert all(0 <= rating <= 5 for rating, _ in broken.values())  # never -1
    # The failures column (and every rating) is what a clean server gives.
    assert broken == clean


def test_a_server_answering_only_garbage_stops_resumably(
    tmp_path: Path, persona_file: Path, api_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """100% broken bodies: one line, nothing stored (no -1), a resume on a clean server completes."""
    from persona_collapse.collect import BackoffPolicy, RunOptions, run_collection
    from persona_collapse.errors import ConfigError

    store = tmp_path / "garbage.db"
    with _server(FaultConfig(html_rate=0.5, error_body_rate=0.5)) as srv:
        options = RunOptions(
            model=MODEL,
            base_url=srv.base_url,
            store=str(store),
            personas=str(persona_file),
            n_personas=2,
            reps=1,
            quiet=True,
        )
        fast = BackoffPolicy(base_s=0.001, cap_s=0.01, max_retries=3)
        with pytest.raises(ConfigError) as caught:
            run_collection(options, policy=fast)
        line = caught.value.message
        assert "\n" not in line and "kept failing" in line
        assert "0 of 60 slots stored; run the same command again to resume" in line
        assert _count(store) == 0
        srv.set_faults(FaultConfig())
        resumed = _run(capsys, srv.base_url, store, persona_file, n=2, reps=1)
    assert resumed.status == 0, resumed.err
    rows = _rows(store, "sim-base_base_persona")
    assert {r[:3] for r in rows} == _grid(2, 1) and all(r[3] >= 0 for r in rows)


def test_a_retry_after_beyond_the_cap_ends_the_run_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, api_key: str
) -> None:
    """``Retry-After: 86400``: one line saying when to resume, exit 2, at once, nothing lost."""
    store = tmp_path / "later.db"
    with _server(FaultConfig(rate_limit_rate=1.0, retry_after_s=86400.0)) as srv:
        started = time.monotonic()
        result = _run(capsys, srv.base_url, store, persona_file, n=2, reps=1)
        assert time.monotonic() - started < 30
        line = _one_error_line(result)
        assert "the server asked to wait 86400 s (until " in line
        assert " UTC); run the same command again then" in line
        assert _count(store) == 0
        srv.set_faults(FaultConfig())
        resumed = _run(capsys, srv.base_url, store, persona_file, n=2, reps=1)
    assert resumed.status == 0, resumed.err
    assert {r[:3] for r in _rows(store, "sim-base_base_persona")} == _grid(2, 1)


def test_max_retry_after_sets_the_cap(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, api_key: str
) -> None:
    store = tmp_path / "cap.db"
    faults = FaultConfig(rate_limit_rate=0.2, retry_after_s=5.0, seed=3)
    with _server(faults) as srv:
        result = _run(
            capsys, srv.base_url, store, persona_file, "--max-retry-after", "2", n=2, reps=1
        )
    line = _one_error_line(result)
    assert "asked to wait 5 s" in line and "slots stored" in line
    assert _count(store) < 60


def test_an_api_key_echoed_in_an_answer_is_never_stored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, api_key: str
) -> None:
    """The server echoes the request's key in every long answer: the store holds *** instead."""
    store = tmp_path / "echo.db"
    # Every one-token answer is a non-digit, so every slot ends in the long fallback answer.
    with _server(FaultConfig(echo_key=True, non_digit_rate=1.0)) as srv:
        result = _run(capsys, srv.base_url, store, persona_file, n=1, reps=1)
    assert result.status == 0, result.err
    with sqlite3.connect(store) as conn:
        texts = [r[0] for r in conn.execute("SELECT raw_text FROM responses")]
    assert len(texts) == N_ITEMS and all("(key: ***)" in t for t in texts)
    secret = FAKE_KEY.encode()
    for path in tmp_path.iterdir():
        if path.is_file():
            assert secret not in path.read_bytes(), path


# -- errors: one line, exit 2 ---------------------------------------------------------


def test_missing_key_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    store = tmp_path / "nokey.db"
    result = run_cli(
        capsys,
        "run",
        "openai/gpt-4o-2024-08-06",
        "--store",
        str(store),
        "--personas",
        str(persona_file),
        "--n-personas",
        "2",
        "--quiet",
    )
    line = _one_error_line(result)
    assert "OPENAI_API_KEY" in line
    assert not store.exists()


def test_api_key_env_that_is_unset_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: LoopbackServer,
) -> None:
    monkeypatch.delenv("MY_PROVIDER_KEY", raising=False)
    result = _run(
        capsys, server.base_url, tmp_path / "k.db", persona_file, "--api-key-env", "MY_PROVIDER_KEY"
    )
    assert "MY_PROVIDER_KEY" in _one_error_line(result)


def test_unknown_model_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, api_key: str
) -> None:
    with LoopbackServer({"sim-base": SimulatedRespondent("base")}) as srv:
        result = run_cli(
            capsys,
            "run",
            "openai/no-such-model",
            "--base-url",
            srv.base_url,
            "--store",
            str(tmp_path / "unknown.db"),
            "--personas",
            str(persona_file),
            "--n-personas",
            "2",
            "--quiet",
        )
    line = _one_error_line(result)
    assert "no-such-model" in line


def test_unreachable_server_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, api_key: str
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = _run(capsys, f"http://127.0.0.1:{port}/v1", tmp_path / "closed.db", persona_file)
    line = _one_error_line(result)
    assert str(port) in line
    assert time.monotonic() - started < 30


def test_bad_base_url_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, api_key: str
) -> None:
    result = _run(capsys, "not a url", tmp_path / "bad.db", persona_file)
    line = _one_error_line(result)
    assert "URL" in line or "url" in line


# -- secrets ---------------------------------------------------------------------------


def test_the_api_key_never_leaves_the_request(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    api_key: str,
    server: LoopbackServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = tmp_path / "secret.db"
    caplog.set_level("DEBUG")
    # A custom base URL gets a key only when --api-key-env names it.
    named = ("--api-key-env", "OPENAI_API_KEY")
    ok = _run(capsys, server.base_url, store, persona_file, *named, n=2, reps=2)
    assert ok.status == 0, ok.err
    # A rejected key: the error line must not echo it either.
    with _server(FaultConfig(reject_key=FAKE_KEY)) as rejecting:
        bad = _run(capsys, rejecting.base_url, tmp_path / "rejected.db", persona_file, *named, n=2)
    assert bad.status == 2
    # The server did receive it (so the test would notice a leak).
    assert any(FAKE_KEY in str(r.headers) for r in server.stats.recorded)
    secret = FAKE_KEY.encode()
    for path in tmp_path.iterdir():
        if path.is_file():
            assert secret not in path.read_bytes(), path
    for text in (ok.out, ok.err, bad.out, bad.err, caplog.text):
        assert FAKE_KEY not in text
        assert "SECRET-0123456789" not in text


# -- cost limit ------------------------------------------------------------------------


def test_max_cost_stops_cleanly_before_the_limit(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    api_key: str,
    server: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"openai/sim-base": {"input": 1000.0, "output": 1000.0}}))
    monkeypatch.setenv("PERSONA_COLLAPSE_PRICES", str(prices))
    store = tmp_path / "cost.db"
    result = _run(capsys, server.base_url, store, persona_file, "--max-cost", "2.0")
    assert result.status == 3, result.err
    assert "--max-cost" in result.err
    stored = _count(store)
    assert 0 < stored < 300
    with sqlite3.connect(store) as conn:
        tokens = conn.execute(
            "SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM responses"
        ).fetchone()
    assert (tokens[0] + tokens[1]) * 1000.0 / 1e6 <= 2.0


def test_a_persona_file_is_asked_whole_by_default(tmp_path: Path) -> None:
    """Without --n-personas a persona file is used whole (personahub-costa: the published 100)."""
    personas = tmp_path / "p.json"
    personas.write_text(json.dumps(["a sailor", "a baker", "a judge"]), encoding="utf-8")
    store = tmp_path / "s.db"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "persona_collapse",
            "run",
            "sim/base",
            "--personas",
            str(personas),
            "--reps",
            "1",
            "--store",
            str(store),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 3 * 30


# -- options: declared once, checked on construction ---------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "greedy"}, "--method 'greedy' is unknown"),
        ({"reps": 0}, "--reps must be at least 1"),
        ({"n_personas": 0}, "--n-personas must be at least 1"),
        ({"temperature": 2.5}, "--temperature must be between 0 and 2"),
        ({"max_attempts": 0}, "--max-attempts must be at least 1"),
        ({"top_logprobs": 1001}, "--top-logprobs must be between 1 and 1000"),
        ({"concurrency": 0}, "--concurrency must be at least 1"),
        ({"timeout_s": 0.0}, "--timeout must be a positive number of seconds"),
        ({"max_cost": -1.0}, "--max-cost must be a positive number of US dollars"),
        ({"max_retry_after_s": 0.0}, "--max-retry-after must be a positive number of seconds"),
        ({"max_retry_after_s": math.inf}, "--max-retry-after must be a positive number"),
        ({"api_key_env": " "}, "--api-key-env needs the name of an environment variable"),
    ],
)
def test_run_options_are_checked_on_construction(changes: dict[str, Any], message: str) -> None:
    from persona_collapse.collect import RunOptions
    from persona_collapse.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        RunOptions.build(model="sim/base", **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"concurrency": 0}, "--concurrency must be at least 1"),
        ({"judge_concurrency": 0}, "--judge-concurrency must be at least 1"),
        ({"n_boot": 99}, "--n-boot must be at least 100"),
    ],
)
def test_verify_options_are_checked_on_construction(changes: dict[str, Any], message: str) -> None:
    from persona_collapse.errors import ConfigError
    from persona_collapse.verify import PUBLISHED_JUDGE, VerifyOptions

    assert VerifyOptions(model="openai/m").judge == PUBLISHED_JUDGE
    with pytest.raises(ConfigError, match=message):
        VerifyOptions(model="openai/m", **changes)


def test_command_line_defaults_are_the_option_defaults() -> None:
    from persona_collapse.cli import build_parser
    from persona_collapse.collect import RunOptions
    from persona_collapse.verify import VerifyOptions

    parser = build_parser()
    run = parser.parse_args(["run", "sim/base"])
    ours = RunOptions(model="sim/base")
    for arg, name in [
        ("reps", "reps"),
        ("timeout", "timeout_s"),
        ("store", "store"),
        ("seed", "seed"),
        ("personas", "personas"),
        ("max_retry_after", "max_retry_after_s"),
    ]:
        assert getattr(run, arg) == getattr(ours, name), arg
    for name in ("temperature", "max_attempts", "top_logprobs", "method"):
        assert getattr(run, name) == getattr(ours.protocol, name), name
    assert run.temperature == 0.1
    verify = parser.parse_args(["verify", "openai/m"])
    theirs = VerifyOptions(model="openai/m")
    for arg, name in [
        ("judge", "judge"),
        ("samples", "samples"),
        ("temperature", "temperature"),
        ("concurrency", "concurrency"),
        ("timeout", "timeout_s"),
        ("store", "store"),
        ("scoring", "scoring"),
    ]:
        assert getattr(verify, arg) == getattr(theirs, name), arg


@pytest.mark.parametrize("argv", [["openai/gpt-4o-2024-08-06"], ["hf/tiny", "--ray", "local"]])
@pytest.mark.parametrize("poll", ["30", "30.0", "5"])
def test_batch_poll_without_batch_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], poll: str
) -> None:
    """Any explicit --batch-poll without --batch is refused, the default value (30) included."""
    from persona_collapse.collect import RunOptions
    from persona_collapse.errors import ConfigError

    store = tmp_path / "never.db"
    result = run_cli(capsys, "run", *argv, "--batch-poll", poll, "--store", str(store))
    assert "--batch-poll needs --batch" in _one_error_line(result)
    assert not store.exists()
    with pytest.raises(ConfigError, match="--batch-poll needs --batch"):
        RunOptions(model="openai/gpt-4o", batch_poll_s=float(poll))
    assert RunOptions(model="openai/gpt-4o").batch_poll_s is None  # None: the default 30 s
    assert RunOptions(model="openai/gpt-4o", batch=True, batch_poll_s=float(poll))


@pytest.mark.parametrize("timeout", ["86400", "60"])
def test_batch_timeout_without_batch_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, timeout: str
) -> None:
    """Any explicit --batch-timeout without --batch is refused, the default value included."""
    store = tmp_path / "never.db"
    argv = ["run", "openai/gpt-4o-2024-08-06", "--batch-timeout", timeout, "--store", str(store)]
    assert "--batch-timeout needs --batch" in _one_error_line(run_cli(capsys, *argv))
    assert not store.exists()


def test_run_sets_every_run_options_field_from_its_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A field added to RunOptions is taken from the option of the same dest, never left
    # at its default because cmd_run did not name it.
    import dataclasses

    from persona_collapse.cli import _run_command
    from persona_collapse.cli._main import build_parser
    from persona_collapse.collect import RunOptions

    @dataclasses.dataclass(frozen=True)
    class Extended(RunOptions):
        extra: int = 0

    built: list[RunOptions] = []

    def collect(options: RunOptions, **_: Any) -> Any:
        built.append(options)
        raise KeyboardInterrupt

    monkeypatch.setattr(_run_command, "RunOptions", Extended)
    monkeypatch.setattr(_run_command, "run_collection", collect)
    args = build_parser().parse_args(["run", "sim/base", "--timeout", "9", "--quiet"])
    args.extra = 5
    with pytest.raises(KeyboardInterrupt):
        _run_command.cmd_run(args)
    (options,) = built
    assert isinstance(options, Extended) and options.extra == 5
    assert options.timeout_s == 9.0 and options.quiet is True

"""Collection on a local Ray cluster equals the single-process run (issue 13).

A two-CPU local cluster and the tiny hf model: the distributed run stores the
single-process distributions and ratings (to 1e-6) and the same metrics;
resume dispatches only the missing cells; a worker killed mid-run (an
``os._exit`` once, after its first batch) is restarted by Ray and every cell
is still stored exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona_collapse.collect import RunOptions, run_collection
from persona_collapse.errors import ConfigError

from .helpers import run_cli

PERSONAS = [
    "A retired schoolteacher who volunteers at the local library.",
    "A pirate captain who loves chaos, gold and the open sea.",
    "A devout nun who has lived in a quiet convent for forty years.",
]
CELLS = 3 * 30


@pytest.fixture(scope="module")
def env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("PERSONA_COLLAPSE_HF_DEVICE", "cpu")
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, env: None) -> Path:
    pytest.importorskip("transformers", reason="needs the hf extra")
    from persona_collapse.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", arch="llama")


@pytest.fixture(scope="module")
def cluster(env: None) -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="needs the ray extra")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def persona_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("personas") / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


def _options(tiny: Path, persona_file: Path, store: Path, **kw: Any) -> RunOptions:
    base: dict[str, Any] = {
        "model": f"hf/{tiny}",
        "personas": str(persona_file),
        "n_personas": 3,
        "store": str(store),
        "quiet": True,
        "concurrency": 8,  # 12 batches of cells for the workers
    }
    base.update(kw)
    return RunOptions.build(**base)


def _rows(store: Path) -> dict[tuple[int, int, int], tuple[int, list[float] | None]]:
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT persona_id, item_id, repetition, rating, distribution FROM responses"
        ).fetchall()
    out = {(p, i, r): (rating, None if d is None else json.loads(d)) for p, i, r, rating, d in rows}
    assert len(out) == len(rows)  # one row per cell
    return out


def _same(a: dict[Any, Any], b: dict[Any, Any]) -> None:
    assert a.keys() == b.keys()
    for key, (rating, dist) in a.items():
        other_rating, other_dist = b[key]
        assert rating == other_rating, key
        if dist is not None or other_dist is not None:
            assert np.abs(np.array(dist) - np.array(other_dist)).max() < 1e-6, key


def _metrics(capsys: pytest.CaptureFixture[str], source: str) -> dict[str, Any]:
    result = run_cli(
        capsys, "metrics", source, "--format", "json", "--persona-draws", "50",
        "--repetition-draws", "10",
    )  # fmt: skip
    assert result.status == 0, result.err
    doc: dict[str, Any] = result.json()[0]
    return doc


def _same_metrics(a: dict[str, Any], b: dict[str, Any]) -> None:
    for key in ("S", "R", "sigma_bar", "n_personas"):
        if key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-6), key


@pytest.mark.parametrize(
    ("method", "extra"),
    [("logprobs", {}), ("sample", {"reps": 2, "temperature": 1.0})],
)
def test_distributed_equals_single_process(
    capsys: pytest.CaptureFixture[str],
    tiny: Path,
    persona_file: Path,
    cluster: Any,
    tmp_path: Path,
    method: str,
    extra: dict[str, Any],
) -> None:
    from persona_collapse.distributed import RayStats, run_distributed

    single = run_collection(
        _options(tiny, persona_file, tmp_path / "one.db", method=method, **extra)
    )
    if method == "sample":  # through the command line
        argv = ["--reps", "2", "--temperature", "1.0", "--concurrency", "8", "--quiet"]
        result = run_cli(
            capsys, "run", f"hf/{tiny}", "--method", method, "--personas", str(persona_file),
            "--store", str(tmp_path / "ray.db"), "--ray", "local", "--workers", "2", *argv,
        )  # fmt: skip
        assert result.status == 0, result.err
        assert "2 workers" not in result.err and f"of {2 * CELLS} slots stored" in result.err
        _same(_rows(tmp_path / "one.db"), _rows(tmp_path / "ray.db"))
        _same_metrics(_metrics(capsys, single.source), _metrics(capsys, result.out.strip()))
        return
    spread = run_distributed(
        _options(tiny, persona_file, tmp_path / "ray.db", method=method, ray="local", workers=2)
    )
    assert spread.complete and spread.stats.done == spread.total_slots == single.total_slots
    _same(_rows(tmp_path / "one.db"), _rows(tmp_path / "ray.db"))
    _same_metrics(_metrics(capsys, single.source), _metrics(capsys, spread.source))
    stats = spread.stats
    assert isinstance(stats, RayStats) and stats.duplicates == 0
    assert sum(t.cells for t in stats.workers.values()) == spread.total_slots
    assert "workers w-" in stats.progress_counts() and "/s" in stats.progress_counts()


def test_resume_dispatches_only_missing_cells_and_worker_loss_doubles_nothing(
    tiny: Path,
    persona_file: Path,
    cluster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from persona_collapse.distributed import WORKER_WRAPPER_ENV, run_distributed
    from persona_collapse.testing import crash_once_env

    reference = run_collection(_options(tiny, persona_file, tmp_path / "one.db", method="logprobs"))
    store = tmp_path / "ray.db"
    first = run_distributed(
        _options(tiny, persona_file, store, method="logprobs", ray="local", n_personas=2)
    )
    assert first.stats.done == 60
    with sqlite3.connect(store) as conn:  # lose ten cells of persona 1: resume asks those
        conn.execute("DELETE FROM responses WHERE persona_id = 1 AND item_id <= 10")
    flag = tmp_path / "crashed"
    options = _options(tiny, persona_file, store, method="logprobs", ray="local", workers=2)
    # a worker's process dies once, after its first batch (8 requests), amid its second
    for name, value in crash_once_env(8, flag, wrapper_env=WORKER_WRAPPER_ENV).items():
        monkeypatch.setenv(name, value)
    resumed = run_collection(options)
    assert flag.exists()  # the crash happened, Ray restarted the actor and retried the batch
    assert resumed.stats.planned == 10 + 30  # the deleted cells and the third persona
    assert resumed.stats.done == 40 and resumed.complete
    _same(_rows(tmp_path / "one.db"), _rows(store))
    assert len(_rows(store)) == CELLS and reference.total_slots == CELLS


def test_options_and_missing_dependencies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona_collapse.distributed import RayExecutor

    for argv, needle in [
        (["run", "sim/base", "--workers", "2"], "--workers and --gpus-per-worker need --ray"),
        (["run", "sim/base", "--ray", "local"], "hf/ or vllm/"),
        (["run", "hf/x", "--ray", "local", "--workers", "0"], "--workers must be at least 1"),
        (["run", "hf/x", "--ray", "local", "--gpus-per-worker", "-1"], "--gpus-per-worker"),
    ]:
        result = run_cli(capsys, *argv)
        assert result.status == 2 and needle in result.err
        assert len(result.err.strip().splitlines()) == 1, result.err
    monkeypatch.setitem(sys.modules, "vllm", None)  # vllm is not installed (or made missing)
    with pytest.raises(ConfigError, match=r"needs the vllm extra"):
        RayExecutor("vllm/Qwen/Qwen3-32B", "local", workers=2, gpus_per_worker=1)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"needs the ray extra.*persona-collapse\[ray\]"):
        RayExecutor("hf/x", "local")


def test_sigterm_stops_a_ray_run_like_ctrl_c_and_it_resumes(
    capsys: pytest.CaptureFixture[str], tiny: Path, persona_file: Path, tmp_path: Path
) -> None:
    """SIGTERM during ``run --ray local``: the cells that arrived are stored, Ray is shut down
    cleanly, exit 130 with the run's summary (no C++ stack dump, no traceback); the resume
    fills the rest, each cell once."""
    import os
    import signal
    import subprocess
    import time

    store = tmp_path / "stopped.db"
    reps = 10  # 900 cells: the run cannot end before the signal
    argv = [
        "run", f"hf/{tiny}", "--personas", str(persona_file), "--reps", str(reps),
        "--concurrency", "8", "--store", str(store), "--run-id", "stopped", "--ray", "local",
        "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PERSONA_COLLAPSE_HF_DEVICE": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "persona_collapse", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with sqlite3.connect(store, timeout=30) as conn:
                    stored = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
                if stored >= 16:
                    break
            except sqlite3.Error:
                pass  # not created yet
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, err
    assert "Interrupted; run the same command again to resume" in err, err
    for noise in ("Traceback", "SIGTERM received", "Exception ignored", "Started a local Ray"):
        assert noise not in err, err
    # The source is the last line on stdout; Ray's own raylet thread may print a line about the
    # actors the stop killed before it, asynchronously (seen under load), which is not ours.
    assert out.strip().splitlines()[-1] == f"{store}:stopped"
    with sqlite3.connect(store) as conn:
        stopped_at = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert 16 <= stopped_at < CELLS * reps

    resumed = run_cli(capsys, *argv)
    assert resumed.status == 0, resumed.err
    assert f"{CELLS * reps - stopped_at} this session" in resumed.err
    rows = _rows(store)  # one row per cell (asserted there): nothing stored twice
    assert len(rows) == CELLS * reps

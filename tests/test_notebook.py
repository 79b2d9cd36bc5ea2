"""The Python API for notebooks: collect (inside a running loop too), measure, compare.

Collection goes to the loopback server (SIMULATED answers) over 127.0.0.1 or
to the in-process ``sim/`` respondent; grids are small (a few personas x 30
items x 2 repetitions), bootstraps short.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import persona_collapse as pc
from persona_collapse.errors import ConfigError, DataError
from persona_collapse.loopback import LoopbackServer
from persona_collapse.simulate import SimulatedRespondent

ROOT = Path(__file__).resolve().parents[1]
PERSONAS = [f"Persona number {i}, who holds views of kind {i % 3}." for i in range(6)]
FAST = {"persona_draws": 50, "repetition_draws": 20}


@pytest.fixture
def persona_file(tmp_path: Path) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        yield srv


def _options(tmp_path: Path, persona_file: Path, **extra: object) -> dict[str, object]:
    return {
        "store": str(tmp_path / "runs.db"),
        "personas": str(persona_file),
        "n_personas": 6,
        "reps": 2,
    } | extra


def test_top_level_has_one_name_per_concept() -> None:
    """measure/Metrics and compare/ComparisonResult at the top; the lower-level twins in their packages."""
    from persona_collapse import analysis, stats

    for name in pc.__all__:
        assert getattr(pc, name) is not None, name
    doubles = ("measure_responses", "compare_responses", "Measurement", "Comparison")
    assert not set(doubles) & set(pc.__all__)
    for name in doubles:
        assert not hasattr(pc, name), name
    assert callable(analysis.measure_responses) and callable(analysis.compare_responses)
    assert isinstance(analysis.Comparison, type) and isinstance(stats.Measurement, type)


def test_import_is_light() -> None:
    code = "import sys, persona_collapse; print('pandas' in sys.modules, 'httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_collect_inside_a_running_loop(
    tmp_path: Path, persona_file: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-test")

    async def cell() -> pc.CollectedRun:
        # what a Jupyter cell does: a plain call while the kernel's loop runs
        asyncio.get_running_loop()
        return pc.collect(
            "openai/gpt-4o-mini", base_url=server.base_url, **_options(tmp_path, persona_file)
        )

    run = asyncio.run(cell())
    assert run.complete and run.outcome.stored == 6 * 30 * 2
    assert run.source == f"{tmp_path / 'runs.db'}:{run.run_id}" == str(run)
    metrics = pc.measure(run, **FAST)
    assert metrics.n_personas == 6 and metrics.n_items == 30
    assert metrics.S > 0 and metrics.S_se > 0 and pytest.approx(1 / metrics.sigma_bar) == metrics.R
    assert set(metrics.foundations) == {"harm", "fairness", "loyalty", "authority", "purity"}
    harm = metrics.foundations["harm"]
    assert harm.S_se > 0 and harm.R_se > 0
    # the handle's string is a SOURCE too, and measuring it again gives the same numbers
    assert pc.measure(run.source, **FAST).S == metrics.S


def test_collect_async_leaves_the_loop_free(tmp_path: Path, persona_file: Path) -> None:
    async def main() -> tuple[pc.CollectedRun, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        run = await pc.collect_async("sim/base", **_options(tmp_path, persona_file))
        task.cancel()
        return run, ticks

    run, ticks = asyncio.run(main())
    assert run.complete and run.outcome.simulated
    assert ticks > 0  # the caller's loop ran while the session collected
    # collect() again outside any loop resumes: nothing left to ask
    again = pc.collect("sim/base", **_options(tmp_path, persona_file))
    assert again.run_id == run.run_id and again.outcome.stats.done == 0


def test_collect_is_the_package_and_callable() -> None:
    from persona_collapse.collect import RunOptions, collect

    assert pc.collect.RunOptions is RunOptions and callable(pc.collect)
    assert pc.collect.collect is collect


def test_unknown_collect_option_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown collect option\(s\) n_persona;.*n_personas"):
        pc.collect("sim/base", n_persona=3)
    with pytest.raises(ConfigError, match="--reps must be at least 1"):
        pc.collect("sim/base", reps=0)


def _frame(seed: int, spread: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for persona in range(40):
        lean = rng.normal(0, spread)
        for item in range(1, 31):
            for rep in (1, 2):
                rating = int(np.clip(round(2.5 + lean + rng.normal(0, 0.7)), 0, 5))
                rows.append((persona, item, rep, rating))
    return pd.DataFrame(rows, columns=["persona_id", "question_id", "run_index", "rating"])


def test_measure_a_dataframe() -> None:
    frame = _frame(1, 1.0)
    metrics = pc.measure(frame, **FAST)
    assert metrics.n_personas == 40 and metrics.label == "frame"
    assert 0.5 < metrics.S < 1.5 and 0 < metrics.S_se < 0.3
    assert metrics.R_se > 0 and metrics.warnings == []
    table = metrics.to_frame()
    assert list(table.index) == ["all", "harm", "fairness", "loyalty", "authority", "purity"]
    assert table.loc["all", "S"] == metrics.S
    assert metrics.to_dict()["S"] == metrics.S


def test_measure_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="lacks the column"):
        pc.measure(pd.DataFrame({"persona_id": [0]}))
    with pytest.raises(DataError, match="cannot measure a list"):
        pc.measure([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown analysis option"):
        pc.measure(_frame(1, 1.0), n_boot=10)


def test_compare_gives_deltas_with_ses() -> None:
    base = _frame(1, 1.0)
    narrow = _frame(2, 0.3)  # personas closer together: S falls
    result = pc.compare(base, narrow=narrow, analysis=FAST)
    delta = result.variants["narrow"].delta
    assert delta.S_pct < -30 and delta.S_pct_se > 0 and delta.R_pct_se > 0
    assert set(result.variants["narrow"].foundations) == set(result.base.foundations)
    assert result.excess is None
    # a mapping works too, and gives the same numbers
    again = pc.compare(base, {"narrow": narrow}, analysis=FAST)
    assert again.variants["narrow"].delta == delta
    assert result.to_frame().loc["narrow", "delta_S_pct"] == delta.S_pct
    doc = result.to_dict()
    assert doc["variants"]["narrow"]["delta_pct"]["S"] == delta.S_pct


def test_compare_secure_insecure_reports_the_excess() -> None:
    result = pc.compare(
        _frame(1, 1.0), secure=_frame(2, 0.9), insecure=_frame(3, 0.3), analysis=FAST
    )
    assert result.excess is not None and result.excess.S_pct < 0
    with pytest.raises(ConfigError, match="at least one variant"):
        pc.compare(_frame(1, 1.0))


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_docs_python_walkthrough_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of docs/python.md, in order, in one namespace (as a notebook)."""
    blocks = _python_blocks(ROOT / "docs" / "python.md")
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"docs/python.md block {number}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message names the block
            raise AssertionError(f"docs/python.md block {number} failed: {exc!r}") from exc


def test_impossible_executor_options_are_refused_before_loading(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-personas.json"  # loading it would fail: it must not be tried
    store = tmp_path / "never.db"
    cases: list[tuple[dict[str, object], str]] = [
        ({"ray": "local"}, "--ray runs local replicas of hf/ or vllm/ models"),
        ({"batch": True, "ray": "local"}, "--ray and --batch exclude each other"),
        ({"workers": 2}, "--workers and --gpus-per-worker need --ray"),
        ({"batch_poll_s": 5.0}, "--batch-poll needs --batch"),
        ({"method": "logprobs", "model": "anthropic/claude-haiku-4-5"}, "returns no logprobs"),
    ]
    for extra, needle in cases:
        model = str(extra.pop("model", "openai/gpt-4o-mini"))
        with pytest.raises(ConfigError, match=needle):
            pc.collect(model, personas=str(missing), store=str(store), **extra)
    with pytest.raises(ConfigError, match="--batch needs a provider batch API"):
        asyncio.run(pc.collect_async("sim/base", personas=str(missing), batch=True))
    assert not store.exists()

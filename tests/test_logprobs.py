"""``run --method logprobs`` over the OpenAI-compatible path, against the loopback server.

The server (SIMULATED answers) serves top-20 first-token logprobs in which some
digits come in two spellings ("3" and " 3") and a little mass sits on
non-digit tokens; the runner must sum the spellings and renormalise, so that
what it stores is exactly the served distribution and S is exactly the value
computed from :meth:`SimulatedRespondent.digit_distribution` at T = 1.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona_collapse.instruments import load_instrument
from persona_collapse.simulate import SimulatedRespondent
from persona_collapse.testing import LoopbackServer

from .helpers import run_cli

PERSONAS = [
    "A retired schoolteacher who volunteers at the local library and bakes for neighbours.",
    "A competitive rock climber and software engineer who distrusts institutions.",
    "A devout farmer raising four children in a small rural community.",
    "A young nurse working night shifts in an emergency department.",
]
N_ITEMS = 30
PROBE = "Reply with the digit 0."
RUN_ID = "sim-base_base_persona_logprobs"


@pytest.fixture
def respondent() -> SimulatedRespondent:
    return SimulatedRespondent("base", seed=3)


@pytest.fixture
def server(respondent: SimulatedRespondent) -> Iterator[LoopbackServer]:
    with LoopbackServer(respondent, keep_requests=True) as srv:
        yield srv


@pytest.fixture
def persona_file(tmp_path: Path) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


def _served(respondent: SimulatedRespondent, temperature: float = 1.0) -> np.ndarray:
    """The served digit distributions, shape (personas, items, 6), instrument item order."""
    items = load_instrument("mfq30").item_ids.tolist()
    return np.array(
        [[respondent.digit_distribution(p, int(i), temperature) for i in items] for p in PERSONAS]
    )


def _run(
    capsys: pytest.CaptureFixture[str], server: LoopbackServer, store: Path, personas: Path
) -> Any:
    return run_cli(
        capsys,
        "run",
        "openai/sim-base",
        "--base-url",
        server.base_url,
        "--store",
        str(store),
        "--personas",
        str(personas),
        "--n-personas",
        str(len(PERSONAS)),
        "--method",
        "logprobs",
        "--quiet",
    )


def test_one_request_per_cell_and_exact_S(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    persona_file: Path,
    server: LoopbackServer,
    respondent: SimulatedRespondent,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    store = tmp_path / "lp.db"
    result = _run(capsys, server, store, persona_file)
    assert result.status == 0, result.err

    inst = load_instrument("mfq30")
    bodies = [
        r.body
        for r in server.stats.recorded
        if r.path.endswith("/chat/completions") and isinstance(r.body, dict)
    ]
    prompts = [b["messages"][0]["content"] for b in bodies if b["messages"][0]["content"] != PROBE]
    expected = {
        inst.persona_prompt(int(i), p) + inst.logprob_suffix
        for p in PERSONAS
        for i in inst.item_ids.tolist()
    }
    counts = Counter(prompts)
    assert set(counts) == expected
    assert set(counts.values()) == {1}  # exactly one request per (persona, item)

    served = _served(respondent)
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT persona_id, item_id, distribution FROM responses WHERE run_id = ?", (RUN_ID,)
        ).fetchall()
    assert len(rows) == len(PERSONAS) * N_ITEMS
    position = {int(i): k for k, i in enumerate(inst.item_ids.tolist())}
    stored = np.zeros_like(served)
    for persona, item, dist in rows:
        stored[persona, position[item]] = json.loads(dist)
    assert np.abs(stored - served).max() < 1e-12

    metrics = run_cli(capsys, "metrics", f"{store}:{RUN_ID}", "--format", "json")
    assert metrics.status == 0, metrics.err
    doc = metrics.json()[0]
    values = np.arange(6.0)
    means = served @ values
    sds = np.sqrt(np.maximum(served @ values**2 - means**2, 0.0))
    assert doc["S"] == pytest.approx(float(np.std(means, axis=0, ddof=1).mean()), abs=1e-9)
    assert doc["sigma_bar"] == pytest.approx(float(sds.mean()), abs=1e-9)
    assert doc["n_personas"] == len(PERSONAS) and doc["n_items"] == N_ITEMS


def test_temperature_metrics_match_the_served_distribution_at_T(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    persona_file: Path,
    server: LoopbackServer,
    respondent: SimulatedRespondent,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    store = tmp_path / "lp.db"
    assert _run(capsys, server, store, persona_file).status == 0
    for t in (0.3, 1.7):
        doc = run_cli(
            capsys, "metrics", f"{store}:{RUN_ID}", "--temperature", str(t), "--format", "json"
        ).json()[0]
        direct = _served(respondent, t)
        means = direct @ np.arange(6.0)
        assert doc["S"] == pytest.approx(float(np.std(means, axis=0, ddof=1).mean()), abs=1e-9)

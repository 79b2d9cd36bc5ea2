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
from persona_collapse.loopback import LoopbackServer
from persona_collapse.simulate import SimulatedRespondent

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


def _store_with_spellings(path: Path, n_personas: int = 6, seed: int = 11) -> tuple[str, Any]:
    """A logprob run whose cells store two spellings per digit, split in a different
    proportion for every digit (so re-weighting per spelling and re-weighting the summed
    digit mass disagree). Returns the SOURCE and the spelling logprobs
    ``(personas, items, 6 digits, 2 spellings)`` in instrument item order."""
    from persona_collapse.store import ResponseRow, ResponseStore, RunInfo

    items = load_instrument("mfq30").item_ids.tolist()
    rng = np.random.default_rng(seed)
    mass = rng.dirichlet(np.full(12, 0.7), size=(n_personas, len(items))).reshape(
        n_personas, len(items), 6, 2
    )
    logprobs = np.log(mass)
    run = RunInfo(run_id="spelled", model="hand/spelled", backend="hand", method="logprobs")
    with ResponseStore(path) as store:
        store.create_run(run)
        store.add_responses(
            run.run_id,
            [
                ResponseRow(
                    persona_id=p,
                    item_id=int(item),
                    repetition=1,
                    rating=int(np.argmax(mass[p, q].sum(axis=1))),
                    distribution=mass[p, q].sum(axis=1).tolist(),
                    extra={
                        "spellings": [
                            [k, float(logprobs[p, q, k, s])] for k in range(6) for s in range(2)
                        ]
                    },
                )
                for p in range(n_personas)
                for q, item in enumerate(items)
            ],
        )
    return f"{path}:{run.run_id}", logprobs


def test_report_cells_rest_on_the_metrics_distribution_at_T(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """At T = 0.5 the report's cell means and answer shares come from the distributions that
    ``metrics --temperature 0.5`` measures: re-weighted per stored spelling, not from the
    summed digit mass (which differs here, each digit's spellings being split differently)."""
    from persona_collapse.report import analyse_study, load_study
    from persona_collapse.stats import reweight_temperature

    source, logprobs = _store_with_spellings(tmp_path / "spelled.db")
    metrics = run_cli(capsys, "metrics", source, "--temperature", "0.5", "--format", "json")
    assert metrics.status == 0, metrics.err
    study_file = tmp_path / "study.toml"
    study_file.write_text(
        "[analysis]\ntemperature = 0.5\npersona_draws = 20\nrepetition_draws = 0\n"
        f'[[family]]\nname = "hand"\n[family.variants.base]\npersona = "{source}"\n',
        encoding="utf-8",
    )
    cells = analyse_study(load_study(study_file)).families[0].base.cells

    values = np.arange(6.0)
    s_from_cells = float(np.std(cells.means, axis=0, ddof=1).mean())
    assert s_from_cells == pytest.approx(metrics.json()[0]["S"], abs=1e-9)
    exact = np.exp(logprobs / 0.5).sum(axis=-1)
    exact /= exact.sum(axis=-1, keepdims=True)
    assert np.abs(cells.means - exact @ values).max() < 1e-9
    assert np.abs(cells.answer_share - exact.reshape(-1, 6).mean(axis=0)).max() < 1e-9
    # The summed-mass shortcut gives other cells on these data: the check has teeth.
    summed = reweight_temperature(np.exp(logprobs).sum(axis=-1), 0.5) @ values
    assert np.abs(summed - cells.means).max() > 1e-2

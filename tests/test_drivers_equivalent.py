"""Every driver steps the same slot protocol: direct, batch and the inspect_ai task
store identical answers for the same seeds.

All three ask the loopback server (real HTTP on 127.0.0.1, SIMULATED answers).
Its answers are seeded by the request seed, so the same request gets the same
answer whichever driver sends it, in whatever order. The ``insecure``
respondent answers a non-digit to about a third of the one-token requests, so
retries, fallbacks and missing slots all occur.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from persona_collapse.collect import RunOptions, run_collection
from persona_collapse.loopback import LoopbackServer
from persona_collapse.simulate import SimulatedRespondent

KEY = "sk-test-drivers-0123456789"
PERSONAS = [
    "A retired schoolteacher who volunteers at the local library.",
    "A competitive rock climber who distrusts institutions.",
]
SEED = 11
MAX_ATTEMPTS = 2
MODEL = "gpt-4o-sim"
"""A name inspect's OpenAI provider treats as a chat model (it would drop the temperature
of a name it takes for a reasoning model); the loopback answers any name."""

Answers = dict[tuple[int, int, int], tuple[int, int, str | None, Any]]


@pytest.fixture
def persona_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


def _stored(store: Path) -> Answers:
    """(persona, item, repetition) -> (rating, failures, raw_text, distribution)."""
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT persona_id, item_id, repetition, rating, failures, raw_text, distribution "
            "FROM responses"
        ).fetchall()
    return {
        (p, i, r): (rating, failures, text, None if dist is None else json.loads(dist))
        for p, i, r, rating, failures, text, dist in rows
    }


def _run(srv: LoopbackServer, store: Path, personas: Path, method: str, batch: bool) -> Answers:
    options = RunOptions(
        model=f"openai/{MODEL}",
        base_url=srv.base_url,
        store=str(store),
        personas=str(personas),
        n_personas=2,
        reps=2,
        max_attempts=MAX_ATTEMPTS,
        method=method,  # type: ignore[arg-type]
        seed=SEED,
        quiet=True,
        batch=batch,
        batch_poll_s=0.01,
    )
    run_collection(options)
    return _stored(store)


def _inspect(srv: LoopbackServer, personas: Path, method: str, log_dir: Path) -> Answers:
    inspect_ai = pytest.importorskip("inspect_ai")
    pytest.importorskip("openai")
    from inspect_ai.model import get_model

    from persona_collapse.inspect_tasks import mfq_personas

    model = get_model(f"openai/{MODEL}", base_url=srv.base_url, api_key=KEY, responses_api=False)
    task = mfq_personas(
        personas=str(personas),
        n_personas=2,
        reps=2,
        max_attempts=MAX_ATTEMPTS,
        method=method,
        seed=SEED,
    )
    (log,) = inspect_ai.eval(task, model=model, log_dir=str(log_dir), display="none")
    assert log.status == "success", log.error
    answers: Answers = {}
    for sample in log.samples or []:
        meta, store = sample.metadata, sample.store
        key = (int(meta["persona_id"]), int(meta["question_id"]), int(sample.epoch))
        answers[key] = (
            int(store["rating"]),
            int(store["failures"]),
            store["raw_text"],
            store["distribution"],
        )
    return answers


@pytest.mark.parametrize("method", ["sample", "logprobs"])
def test_direct_batch_and_inspect_store_identical_answers(
    tmp_path: Path, persona_file: Path, method: str
) -> None:
    with LoopbackServer(SimulatedRespondent("insecure", seed=5)) as srv:
        direct = _run(srv, tmp_path / "direct.db", persona_file, method, batch=False)
        batch = _run(srv, tmp_path / "batch.db", persona_file, method, batch=True)
        inspected = _inspect(srv, persona_file, method, tmp_path / "logs")
    reps = 1 if method == "logprobs" else 2
    assert len(direct) == 2 * 30 * reps
    assert batch == direct
    assert inspected == direct
    if method == "sample":
        failures = [a[1] for a in direct.values()]
        assert any(f > 0 for f in failures)  # retries happened
        assert any(f >= MAX_ATTEMPTS for f in failures)  # the fallback was asked
    else:
        assert all(a[3] is not None for a in direct.values() if a[0] >= 0)

"""Top-ups: resuming a run with more repetitions or more personas asks only the new slots.

Real HTTP on 127.0.0.1 (the loopback server, SIMULATED answers), the official
OpenAI SDK, the command line in-process; requests are counted at the server.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persona_collapse.loopback import LoopbackServer
from persona_collapse.simulate import SimulatedRespondent

from .helpers import Result, run_cli

MODEL = "openai/sim-base"
N_ITEMS = 30
PROBE = "Reply with the digit 0."
PERSONAS = [
    "A retired schoolteacher who volunteers at the local library.",
    "A competitive rock climber who distrusts institutions.",
    "A devout farmer raising four children in a rural community.",
    "A city council member focused on housing policy.",
    "A young nurse working night shifts in an emergency department.",
]


@pytest.fixture
def persona_file(tmp_path: Path) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    with LoopbackServer(SimulatedRespondent("base", seed=1), keep_requests=True) as srv:
        yield srv


def _run(
    capsys: pytest.CaptureFixture[str],
    server: LoopbackServer,
    store: Path,
    persona_file: Path,
    *extra: str,
    n: int,
    reps: int,
) -> Result:
    return run_cli(
        capsys,
        "run",
        MODEL,
        "--base-url",
        server.base_url,
        "--store",
        str(store),
        "--personas",
        str(persona_file),
        "--n-personas",
        str(n),
        "--reps",
        str(reps),
        "--run-id",
        "pilot",
        "--quiet",
        *extra,
    )


def _chat_requests(server: LoopbackServer) -> list[dict[str, Any]]:
    """Chat requests received since the last reset, the start-up probe left out."""
    bodies = [b for b in server.stats.bodies if isinstance(b, dict) and "messages" in b]
    return [b for b in bodies if b["messages"][-1]["content"] != PROBE]


def _slots(store: Path) -> list[tuple[int, int, int]]:
    with sqlite3.connect(store) as conn:
        return [
            (int(p), int(i), int(r))
            for p, i, r in conn.execute(
                "SELECT persona_id, item_id, repetition FROM responses WHERE run_id = 'pilot'"
            )
        ]


def _failures(store: Path, where: str) -> int:
    """Failed attempts (each one more request) stored in the slots ``where`` selects."""
    with sqlite3.connect(store) as conn:
        row = conn.execute(
            f"SELECT COALESCE(SUM(failures), 0) FROM responses WHERE run_id = 'pilot' AND {where}"
        ).fetchone()
    return int(row[0])


def _settings(store: Path) -> tuple[dict[str, Any], str]:
    with sqlite3.connect(store) as conn:
        text, digest = conn.execute(
            "SELECT settings, persona_set_hash FROM runs WHERE run_id = 'pilot'"
        ).fetchone()
    return json.loads(text), str(digest)


def _one_error_line(result: Result) -> str:
    assert result.status == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]


def test_more_repetitions_ask_only_the_new_slots(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, server: LoopbackServer
) -> None:
    store = tmp_path / "topup.db"
    first = _run(capsys, server, store, persona_file, n=2, reps=2)
    assert first.status == 0, first.err
    assert len(_slots(store)) == 2 * N_ITEMS * 2
    server.stats.reset()

    more = _run(capsys, server, store, persona_file, n=2, reps=3)
    assert more.status == 0, more.err
    asked = _chat_requests(server)
    # one request per new slot, plus one per failed attempt stored with them
    assert len(asked) == 2 * N_ITEMS * 1 + _failures(store, "repetition = 3")
    slots = _slots(store)
    assert len(slots) == len(set(slots)) == 2 * N_ITEMS * 3
    assert {r for _p, _i, r in slots} == {1, 2, 3}
    settings, _digest = _settings(store)
    assert settings["reps"] == 3
    assert [(h["reps"], h["n_personas"]) for h in settings["grown_from"]] == [(2, 2)]
    assert "Topped up (repetitions 2 -> 3): 60 new slots asked." in more.err + more.out

    server.stats.reset()  # resuming the grown run asks nothing
    again = _run(capsys, server, store, persona_file, n=2, reps=3)
    assert again.status == 0, again.err
    assert _chat_requests(server) == []
    assert len(_settings(store)[0]["grown_from"]) == 1


def test_more_personas_ask_only_the_new_personas(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, server: LoopbackServer
) -> None:
    store = tmp_path / "topup.db"
    assert _run(capsys, server, store, persona_file, n=3, reps=2).status == 0
    _settings_before, hash_before = _settings(store)
    server.stats.reset()

    more = _run(capsys, server, store, persona_file, n=5, reps=2)
    assert more.status == 0, more.err
    asked = _chat_requests(server)
    assert len(asked) == 2 * N_ITEMS * 2 + _failures(store, "persona_id >= 3")
    assert all(any(p in b["messages"][-1]["content"] for p in PERSONAS[3:]) for b in asked)
    slots = _slots(store)
    assert len(slots) == len(set(slots)) == 5 * N_ITEMS * 2
    settings, digest = _settings(store)
    assert settings["n_personas"] == 5 and digest != hash_before
    assert settings["grown_from"][0]["persona_set_hash"] == hash_before
    assert settings["grown_from"][0]["n_personas"] == 3

    metrics = run_cli(capsys, "metrics", f"{store}:pilot", "--format", "json")
    assert metrics.status == 0, metrics.err
    (doc,) = metrics.json()
    assert doc["n_personas"] == 5
    assert not [w for w in doc.get("warnings", []) if "incomplete" in w]  # complete at the new size


def test_other_changes_are_still_refused_with_the_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, server: LoopbackServer
) -> None:
    store = tmp_path / "topup.db"
    assert _run(capsys, server, store, persona_file, n=3, reps=2).status == 0
    server.stats.reset()

    hotter = _run(capsys, server, store, persona_file, "--temperature", "0.7", n=3, reps=3)
    line = _one_error_line(hotter)
    assert "temperature" in line and "0.1" in line and "0.7" in line
    fewer = _one_error_line(_run(capsys, server, store, persona_file, n=2, reps=2))
    assert "n_personas=3, not 2" in fewer and "grow, not shrink" in fewer

    shuffled = tmp_path / "shuffled.json"
    shuffled.write_text(json.dumps([PERSONAS[1], PERSONAS[0], *PERSONAS[2:]]), encoding="utf-8")
    other = _one_error_line(_run(capsys, server, store, shuffled, n=5, reps=2))
    assert "first 3 personas are not the stored ones" in other
    assert _chat_requests(server) == []
    assert _settings(store)[0]["n_personas"] == 3 and "grown_from" not in _settings(store)[0]


@pytest.mark.parametrize(
    ("labels", "again", "said"),
    [
        (("--variant", "insecure"), ("--variant", "secure"), "variant 'insecure', not 'secure'"),
        (("--variant", "insecure"), (), "variant 'insecure', not 'base'"),
        (("--family", "GPT-4o"), ("--family", "Qwen"), "family 'GPT-4o', not 'Qwen'"),
        (("--family", "GPT-4o"), (), "family 'GPT-4o', not ''"),
    ],
    ids=["other-variant", "variant-left-out", "other-family", "family-left-out"],
)
def test_other_labels_on_resume_are_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    server: LoopbackServer,
    labels: tuple[str, ...],
    again: tuple[str, ...],
    said: str,
) -> None:
    """A resume with another --variant or --family is refused, never stored under the old labels."""
    store = tmp_path / "labels.db"
    assert _run(capsys, server, store, persona_file, *labels, n=1, reps=1).status == 0
    with sqlite3.connect(store) as conn:
        before = conn.execute("SELECT variant, family FROM runs WHERE run_id = 'pilot'").fetchone()
    server.stats.reset()

    line = _one_error_line(_run(capsys, server, store, persona_file, *again, n=1, reps=2))
    assert said in line, line
    assert "--run-id" in line and ("--variant" in line or "--family" in line), line
    assert _chat_requests(server) == []
    with sqlite3.connect(store) as conn:
        after = conn.execute("SELECT variant, family FROM runs WHERE run_id = 'pilot'").fetchone()
    assert after == before
    assert len(_slots(store)) == N_ITEMS

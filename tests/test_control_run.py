"""``run --instrument mmlu|gsm8k`` over the loopback server: one request per slot, the contract row.

The loopback server's respondent here answers each task item with a fixed
reply (some correct, some wrong, some that do not parse), so the stored rows
can be checked one by one. Item sets are small ``--items`` files.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona_collapse.loopback import LoopbackServer
from persona_collapse.simulate import Completion, SimulatedRespondent
from persona_collapse.store import task_run_ids, task_source_kind

from .helpers import run_cli

MODEL = "openai/sim-base"
PROBE = "Reply with the digit 0."

MMLU_ITEMS = {
    "name": "mini-mmlu",
    "items": [
        {
            "item_id": 0,
            "subject": "arithmetic",
            "question": "Q-zero: 2 + 2?",
            "choices": ["3", "4", "5", "6"],
            "answer": "B",
        },
        {
            "item_id": 1,
            "subject": "geography",
            "question": "Q-one: the capital of France?",
            "choices": ["Rome", "Lyon", "Paris", "Nice"],
            "answer": "C",
        },
        {
            "item_id": 2,
            "subject": "geography",
            "question": "Q-two: the longest river?",
            "choices": ["Nile", "Po", "Rhine", "Seine"],
            "answer": "A",
        },
    ],
}
MMLU_REPLIES = {"Q-zero": "B", "Q-one": "To", "Q-two": "d"}
"""Correct, a format failure (no A-D letter), wrong (a lower-case label)."""

GSM8K_ITEMS = {
    "items": [
        {"item_id": 10, "question": "P-ten: 600 + 400?", "answer": "1,000"},
        {"item_id": 11, "question": "P-eleven: 3 * 3?", "answer": "9"},
        {"item_id": 12, "question": "P-twelve: 7 - 2?", "answer": "5"},
    ],
}
GSM8K_REPLIES = {
    "P-ten": "600 + 400 = 1000\n#### 1,000.0",
    "P-eleven": "I cannot say.",
    "P-twelve": "7 - 2 = 4\n#### 4",
}


class _Fixed(SimulatedRespondent):
    """Answers a task prompt by the reply its question's tag selects."""

    def __init__(self, replies: dict[str, str]) -> None:
        super().__init__("base", seed=0)
        self.replies = replies

    def generate(
        self, prompt: str, *, temperature: float, max_tokens: int, rng: np.random.Generator
    ) -> Completion:
        tag = prompt.split(":", 1)[0]
        if tag not in self.replies:
            return super().generate(prompt, temperature=temperature, max_tokens=max_tokens, rng=rng)
        return Completion(self.replies[tag], "stop", len(prompt) // 4, 3)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")


def _server(replies: dict[str, str]) -> Iterator[LoopbackServer]:
    with LoopbackServer(_Fixed(replies), keep_requests=True) as srv:
        yield srv


def _chat_bodies(server: LoopbackServer) -> list[dict[str, Any]]:
    bodies = [
        r.body
        for r in server.stats.recorded
        if r.path.endswith("/chat/completions") and isinstance(r.body, dict)
    ]
    return [b for b in bodies if b["messages"][0]["content"] != PROBE]


def _rows(store: Path, run_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as conn:
        return [
            (p, i, r, rating, f, text, json.loads(extra) if extra else None)
            for p, i, r, rating, f, text, extra in conn.execute(
                "SELECT persona_id, item_id, repetition, rating, failures, raw_text, extra "
                "FROM responses WHERE run_id = ? ORDER BY 2, 3",
                (run_id,),
            )
        ]


def task_run_argv(
    task: str, items: Path, url: str, store: Path, *extra: str, reps: int = 2
) -> list[str]:
    """``run MODEL --instrument TASK --items ITEMS`` against the loopback ``url`` into ``store``."""
    return [
        "run",
        MODEL,
        "--instrument",
        task,
        "--items",
        str(items),
        "--reps",
        str(reps),
        "--base-url",
        url,
        "--store",
        str(store),
        *extra,
    ]


def _run(capsys: pytest.CaptureFixture[str], task: str, items: Path, store: Path, url: str) -> Any:
    return run_cli(capsys, *task_run_argv(task, items, url, store, "--quiet"))


@pytest.mark.parametrize(
    ("task", "doc", "replies", "expected"),
    [
        (
            "mmlu",
            MMLU_ITEMS,
            MMLU_REPLIES,
            {0: (1, 0, "B", "B"), 1: (-1, 1, None, "C"), 2: (0, 0, "D", "A")},
        ),
        (
            "gsm8k",
            GSM8K_ITEMS,
            GSM8K_REPLIES,
            {10: (1, 0, "1000", "1,000"), 11: (-1, 1, None, "9"), 12: (0, 0, "4", "5")},
        ),
    ],
)
def test_a_task_run_asks_each_slot_once_and_stores_the_contract_row(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    api_key: None,
    task: str,
    doc: dict[str, Any],
    replies: dict[str, str],
    expected: dict[int, tuple[int, int, str | None, str]],
) -> None:
    items = tmp_path / f"{task}.json"
    items.write_text(json.dumps(doc), encoding="utf-8")
    store = tmp_path / "control.db"
    for server in _server(replies):
        result = _run(capsys, task, items, store, server.base_url)
        assert result.status == 0, result.err
        bodies = _chat_bodies(server)
    name = doc.get("name", task)
    run_id = f"sim-base_base_{name}"
    rows = _rows(store, run_id)
    assert len(bodies) == len(rows) == 3 * 2  # one request per slot: nothing retried
    max_tokens = 1 if task == "mmlu" else 512
    assert {(b["max_tokens"], b["temperature"]) for b in bodies} == {(max_tokens, 0.1)}
    assert len({b["seed"] for b in bodies}) == 6  # per-request seeds
    for persona, item, _rep, rating, failures, text, extra in rows:
        want_rating, want_failures, answer, gold = expected[item]
        assert persona == -1
        assert (rating, failures) == (want_rating, want_failures)
        assert extra == {"answer": answer, "gold": gold}
        assert text is not None
    with sqlite3.connect(store) as conn:
        instrument, settings = conn.execute(
            "SELECT instrument, settings FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
    assert instrument == name
    recorded = json.loads(settings)
    assert len(recorded["items_sha256"]) == 64 and recorded["items_file"] == items.name
    # A run of a user's --items set (named "mini-mmlu" or by its file stem, not a
    # built-in task's name) is a task run all the same: the task readers take it.
    assert task_run_ids(store) == [run_id]
    assert task_source_kind(str(store)) == "store"
    assert task_source_kind(f"{store}:{run_id}") == "run"

    out = tmp_path / "export.csv"
    result = run_cli(capsys, "export", f"{store}:{run_id}", "-o", str(out))
    assert result.status == 0, result.err
    with out.open(newline="", encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    header = "item_id,run_index,answer,gold,correct,format_valid,failures,response,collected_at"
    assert out.read_text(encoding="utf-8").splitlines()[0] == header
    by_item = {(r["item_id"], r["run_index"]): r for r in exported}
    assert len(by_item) == 6
    for item, (rating, failures, answer, gold) in expected.items():
        row = by_item[(str(item), "1")]
        assert (row["answer"], row["gold"], row["correct"]) == (
            answer or "",
            gold,
            str(int(rating == 1)),
        )
        assert (row["format_valid"], row["failures"]) == (
            str(int(answer is not None)),
            str(failures),
        )


def test_task_runs_refuse_options_that_would_do_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cases = [
        (("--instrument", "mmlu", "--n-personas", "3"), "--n-personas does nothing"),
        (("--instrument", "gsm8k", "--personas", "p.json"), "--personas does nothing"),
        (("--instrument", "gsm8k", "--method", "logprobs"), "logprobs does not apply"),
        (("--instrument", "mmlu", "--method", "logprobs"), "logprobs does not apply"),
        (("--instrument", "mmlu", "--max-attempts", "3"), "--max-attempts does nothing"),
        (("--items", "x.json"), "--items gives the items of a task"),
    ]
    for argv, message in cases:
        result = run_cli(capsys, "run", MODEL, "--store", str(tmp_path / "s.db"), *argv)
        assert result.status == 2, argv
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.err


def test_plan_prices_a_task_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    items = tmp_path / "gsm8k.json"
    items.write_text(json.dumps(GSM8K_ITEMS), encoding="utf-8")
    argv = ("plan", "openai/gpt-4o-2024-08-06", "--instrument", "gsm8k", "--items", str(items))
    result = run_cli(capsys, *argv, "--reps", "4", "--format", "json")
    assert result.status == 0, result.err
    plan = json.loads(result.out)
    assert (plan["mode"], plan["n_items"], plan["slots"], plan["requests"]) == ("self", 3, 12, 12)
    assert plan["fallback_generations"] == 0 and plan["completion_tokens"] == 12 * 512
    assert plan["cost_usd"] > 0 and plan["mde_pct"] == {"S": None, "R": None}
    result = run_cli(capsys, *argv)
    assert result.status == 0 and "detectable change" not in result.out

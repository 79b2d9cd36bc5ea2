"""The demo's capability control: the generated ``demo-arithmetic`` task and how the
SIMULATED respondent answers it (capability, instability, format failures), collected by
``run --instrument demo-arithmetic`` over the loopback server like MMLU."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona_collapse.errors import DataError
from persona_collapse.instruments import (
    DEMO_TASK,
    MMLU_INSTRUCTION,
    demo_task,
    demo_task_items,
    demo_task_json,
    load_instrument,
    mmlu_prompt,
    task_names,
)
from persona_collapse.loopback import LoopbackServer
from persona_collapse.protocol import task_parser
from persona_collapse.simulate import VARIANTS, SimulatedRespondent, VariantParams, stable_rng

from .helpers import run_cli

LETTERS = ("A", "B", "C", "D")
READ = task_parser("letter")
ITEMS_SHA256 = "cb16207ed4ef710923b1a2064659b2b7dc594fbeb68a648d107cf2892293e444"
_OPERATION = re.compile(r"What is (\d+) (\+|-|x|divided by) (\d+)\?")


def _solve(question: str) -> int:
    m = _OPERATION.fullmatch(question)
    assert m is not None, question
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    if op == "divided by":
        assert a % b == 0
        return a // b
    return {"+": a + b, "-": a - b, "x": a * b}[op]


def _replies(
    respondent: SimulatedRespondent, reps: int, temperature: float = 0.1
) -> list[list[str | None]]:
    """Parsed one-token replies per demo item (instrument order) and repetition."""
    task = demo_task()
    out = []
    for item in task.items:
        prompt = task.self_prompt(item)
        texts = [
            respondent.generate(
                prompt, temperature=temperature, max_tokens=1, rng=stable_rng(7, prompt, k)
            ).text
            for k in range(reps)
        ]
        out.append([READ.read(t, LETTERS) for t in texts])
    return out


# -- the items ------------------------------------------------------------------------


def test_the_demo_task_is_forty_generated_sums_with_their_right_letter() -> None:
    doc = demo_task_items()
    items = doc["items"]
    assert doc["name"] == DEMO_TASK and len(items) == 40
    assert [it["item_id"] for it in items] == list(range(1, 41))
    assert Counter(it["subject"] for it in items) == {
        s: 10 for s in ("addition", "subtraction", "multiplication", "division")
    }
    for it in items:
        choices = [int(c) for c in it["choices"]]
        assert len(set(choices)) == 4 and min(choices) > 0, it
        assert choices[LETTERS.index(it["answer"])] == _solve(it["question"]), it
    assert len({it["question"] for it in items}) == 40


def test_the_demo_task_is_the_same_everywhere_and_records_its_items_hash() -> None:
    text = demo_task_json()
    assert json.loads(text) == demo_task_items()
    task = load_instrument(DEMO_TASK)
    assert task is demo_task()
    assert task.items_sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert task.items_sha256 == ITEMS_SHA256  # generated from a fixed seed with blake2b


def test_the_demo_task_is_asked_like_mmlu() -> None:
    task = demo_task()
    assert DEMO_TASK in task_names()
    assert task.kind == "task" and "not MMLU" in task.title
    how = task.elicitation
    assert (how.parser, how.answers, how.max_tokens) == ("letter", LETTERS, 1)
    assert (how.attempt_policy, how.logprobs) == ("once", False)
    first = demo_task_items()["items"][0]
    assert task.self_prompt(task.items[0]) == mmlu_prompt(first["question"], first["choices"])
    assert task.items[0].gold == first["answer"] and task.items[0].subscale == "addition"
    assert task.self_prompt(task.items[0]).endswith(MMLU_INSTRUCTION)


def test_the_demo_task_takes_no_item_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--items"):
        load_instrument(DEMO_TASK, items=tmp_path / "x.json")


# -- the simulated answers ----------------------------------------------------------------


def test_a_simulated_variant_answers_a_task_prompt_with_a_letter() -> None:
    respondent = SimulatedRespondent("base", seed=0)
    task = demo_task()
    prompt = task.self_prompt(task.items[3])
    info = respondent.identify(prompt)
    assert (info.kind, info.item_id, info.gold) == ("task", 4, task.items[3].gold)
    long = respondent.generate(prompt, temperature=0.1, max_tokens=64, rng=stable_rng(1))
    assert READ.read(long.text, LETTERS) is not None or long.text == "I'm not sure."
    again = respondent.generate(prompt, temperature=0.1, max_tokens=64, rng=stable_rng(1))
    assert again == long  # seeded by the request: reruns are identical


def test_capability_is_the_share_of_right_letters_and_instability_moves_repetitions() -> None:
    stable = VariantParams(name="stable", task_accuracy=0.7, task_instability=0.0)
    shaky = VariantParams(name="shaky", task_accuracy=0.7, task_instability=0.6)
    right = np.array([it.gold for it in demo_task().items])
    unanimous = {}
    for params in (stable, shaky):
        answers = np.array(_replies(SimulatedRespondent(params, seed=3), reps=40), dtype=object)
        assert all(a is not None for a in answers.ravel())  # no format failures asked for
        accuracy = float(np.mean(answers == right[:, None]))
        assert accuracy == pytest.approx(0.7, abs=0.1), params.name
        unanimous[params.name] = np.mean([len(set(row)) == 1 for row in answers])
    assert unanimous == {"stable": 1.0, "shaky": pytest.approx(0.0, abs=0.1)}


def test_temperature_zero_always_gives_the_usual_answer() -> None:
    respondent = SimulatedRespondent(VariantParams(task_instability=1.0), seed=0)
    task = demo_task()
    for row, item in zip(_replies(respondent, reps=5, temperature=0.0), task.items, strict=True):
        assert set(row) == {respondent.usual_answer(task.self_prompt(item))}


def test_variants_of_one_seed_find_the_same_items_hard() -> None:
    task = demo_task()
    prompts = [task.self_prompt(it) for it in task.items]
    base, insecure = SimulatedRespondent("base", seed=5), SimulatedRespondent("insecure", seed=5)
    agree = np.mean([base.usual_answer(p) == insecure.usual_answer(p) for p in prompts])
    assert agree >= 0.9  # accuracies 0.82 and 0.80 on shared draws


def test_the_presets_tell_the_persona_specific_story() -> None:
    assert VARIANTS["insecure"].task_instability >= 5 * VARIANTS["base"].task_instability
    assert abs(VARIANTS["insecure"].task_accuracy - VARIANTS["base"].task_accuracy) <= 0.05
    spread = {
        name: np.mean(
            [len(set(row) - {None}) > 1 for row in _replies(SimulatedRespondent(name), 10)]
        )
        for name in ("base", "insecure")
    }
    assert spread["insecure"] > spread["base"] + 0.15


def test_a_format_failure_has_no_letter_for_the_lenient_parser() -> None:
    respondent = SimulatedRespondent(VariantParams(task_format_failure=1.0), seed=0)
    task = demo_task()
    for max_tokens in (1, 32):
        done = respondent.generate(
            task.self_prompt(task.items[0]),
            temperature=0.1,
            max_tokens=max_tokens,
            rng=stable_rng(0),
        )
        assert READ.read(done.text, LETTERS) is None, done.text


def test_an_unknown_task_item_is_answered_at_chance_with_a_letter() -> None:
    respondent = SimulatedRespondent("base", seed=0)
    prompts = [mmlu_prompt(f"Unknown question {k}?", ["w", "x", "y", "z"]) for k in range(200)]
    letters = Counter(respondent.usual_answer(p) for p in prompts)
    assert set(letters) == set(LETTERS) and min(letters.values()) > 25
    assert respondent.identify(prompts[0]).gold is None


def test_task_parameters_are_fractions() -> None:
    for name in ("task_accuracy", "task_instability", "task_format_failure"):
        with pytest.raises(ValueError, match=name):
            VariantParams(**{name: 1.5})


# -- collected like MMLU ------------------------------------------------------------------


def _rows(store: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as conn:
        return list(
            conn.execute(
                "SELECT persona_id, item_id, repetition, rating, failures, raw_text, extra "
                "FROM responses ORDER BY 2, 3"
            )
        )


def test_run_collects_the_demo_task_once_per_slot_and_reruns_identically(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    stores = [tmp_path / "a.db", tmp_path / "b.db"]
    for store in stores:
        with LoopbackServer(SimulatedRespondent("base", seed=0), keep_requests=True) as srv:
            result = run_cli(
                capsys,
                "run",
                "openai/sim-base",
                "--instrument",
                DEMO_TASK,
                "--reps",
                "3",
                "--base-url",
                srv.base_url,
                "--store",
                str(store),
                "--quiet",
            )
            assert result.status == 0, result.err
            asked = [
                r.body
                for r in srv.stats.recorded
                if r.path.endswith("/chat/completions")
                and isinstance(r.body, dict)
                and r.body["messages"][0]["content"].endswith(MMLU_INSTRUCTION)
            ]
        assert len(asked) == 40 * 3  # one request per slot: never retried
        assert {b["max_tokens"] for b in asked} == {1}
    rows = _rows(stores[0])
    assert rows == _rows(stores[1])
    assert len(rows) == 120 and {r[0] for r in rows} == {-1}
    gold = {it.id: it.gold for it in demo_task().items}
    for _, item_id, _, rating, failures, text, extra in rows:
        answer = json.loads(extra)
        assert answer["gold"] == gold[item_id]
        if failures:
            assert (rating, answer["answer"]) == (-1, None)
        else:
            assert answer["answer"] == text and rating == int(text == gold[item_id])
    with sqlite3.connect(stores[0]) as conn:
        instrument, settings = conn.execute("SELECT instrument, settings FROM runs").fetchone()
    assert instrument == DEMO_TASK
    assert json.loads(settings)["items_sha256"] == ITEMS_SHA256


def test_metrics_on_a_store_with_task_and_questionnaire_runs_reads_only_the_questionnaire(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store holding an MFQ run and a task run (as a default store does once a user runs
    both): ``metrics STORE`` measures the MFQ run and says it left the task run out, instead
    of reading the task's rows as questionnaire answers."""
    store = tmp_path / "mixed.db"
    personas = tmp_path / "personas.json"
    personas.write_text(json.dumps([f"Persona {i}." for i in range(3)]), encoding="utf-8")
    common = ["--store", str(store), "--quiet", "--reps", "2"]
    mfq = run_cli(capsys, "run", "sim/base", "--personas", str(personas), *common)
    assert mfq.status == 0, mfq.err
    task = run_cli(capsys, "run", "sim/base", "--instrument", "demo-arithmetic", *common)
    assert task.status == 0, task.err
    res = run_cli(capsys, "metrics", str(store), "--format", "json", "--persona-draws", "20")
    assert res.status == 0, res.err
    docs = json.loads(res.out)
    docs = docs if isinstance(docs, list) else [docs]
    assert [d["source"].rsplit(":", 1)[1] for d in docs] == ["sim-base_base_persona"]
    assert "left out 1 task run" in res.err and "demo-arithmetic" in res.err

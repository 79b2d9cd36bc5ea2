"""Task runs (``run --instrument mmlu|gsm8k --items``) against a misbehaving server, a kill, an
empty reply.

The rules checked: a transport fault (5xx, 429, timeout, a cut, HTML or error-object 200
body) is never stored as data; an answer goes only to the slot that asked for it; a killed
run resumes with every slot stored exactly once; an empty reply is a real answer (a format
failure), stored once and never asked again.

The loopback respondent here draws each task reply from the request's own generator, which
the server seeds from the request's published seed: the same slot gets the same reply in
every run, so a faulted (or killed and resumed) run must store exactly the rows of a
fault-free one.
"""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona_collapse.loopback import FaultConfig, LoopbackServer
from persona_collapse.protocol import TASK_PARSERS
from persona_collapse.simulate import Completion, SimulatedRespondent

from .helpers import cli_process, interrupt, run_cli
from .test_control_run import GSM8K_ITEMS, MMLU_ITEMS, task_run_argv

MODEL = "openai/sim-base"
KEY = "sk-test-0123456789"
PROBE = "Reply with the digit 0."
REPS = 4
TASKS = {
    "mmlu": (MMLU_ITEMS, "sim-base_base_mini-mmlu", "letter"),
    "gsm8k": (GSM8K_ITEMS, "sim-base_base_gsm8k", "number"),
}


class _Dice(SimulatedRespondent):
    """Answers a task prompt with a reply drawn from the request's generator (per-slot seed):
    MMLU (one token) a letter or a non-letter, GSM8K a final number or no number."""

    def generate(
        self, prompt: str, *, temperature: float, max_tokens: int, rng: np.random.Generator
    ) -> Completion:
        if prompt.startswith(PROBE):
            return super().generate(prompt, temperature=temperature, max_tokens=max_tokens, rng=rng)
        if max_tokens == 1:
            text = ("A", "B", "C", "D", "I")[int(rng.integers(5))]
        else:
            final = ("1,000", "9", "5", "7", None)[int(rng.integers(5))]
            text = "I cannot say." if final is None else f"Working it out.\n#### {final}"
        return Completion(text, "stop", len(prompt) // 4, max(1, len(text) // 4))


class _Empty(_Dice):
    """Replies with empty content to the second item of each set (Q-one, P-eleven)."""

    def generate(
        self, prompt: str, *, temperature: float, max_tokens: int, rng: np.random.Generator
    ) -> Completion:
        if prompt.startswith(("Q-one", "P-eleven")):
            return Completion("", "stop", len(prompt) // 4, 0)
        return super().generate(prompt, temperature=temperature, max_tokens=max_tokens, rng=rng)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _items(tmp_path: Path, task: str) -> Path:
    path = tmp_path / f"{task}.json"
    if not path.exists():
        path.write_text(json.dumps(TASKS[task][0]), encoding="utf-8")
    return path


def _argv(task: str, items: Path, url: str, store: Path, *extra: str) -> list[str]:
    return task_run_argv(task, items, url, store, "--concurrency", "4", *extra, reps=REPS)


def _rows(store: Path, run_id: str) -> list[tuple[Any, ...]]:
    """(item, repetition, rating, failures, raw text, extra) of every stored row, in slot order."""
    with sqlite3.connect(store, timeout=30) as conn:
        return [
            (i, r, rating, f, text, json.loads(extra) if extra else None)
            for i, r, rating, f, text, extra in conn.execute(
                "SELECT item_id, repetition, rating, failures, raw_text, extra "
                "FROM responses WHERE run_id = ? ORDER BY 1, 2",
                (run_id,),
            )
        ]


def _count(store: Path) -> int:
    try:
        with sqlite3.connect(store, timeout=30) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.Error:
        return 0  # tables not created yet


def _slots(task: str) -> set[tuple[int, int]]:
    ids = [int(item["item_id"]) for item in TASKS[task][0]["items"]]
    return {(i, r) for i in ids for r in range(1, REPS + 1)}


def _check_slots(task: str, rows: list[tuple[Any, ...]]) -> None:
    """Every slot exactly once; ``correct`` (rating 1) exactly where answer == gold (normal form)."""
    assert len(rows) == len(_slots(task)) and {r[:2] for r in rows} == _slots(task)
    parser = TASK_PARSERS[TASKS[task][2]]
    for _item, _rep, rating, failures, _text, extra in rows:
        answer, gold = extra["answer"], extra["gold"]
        if answer is None:
            assert (rating, failures) == (-1, 1)
        else:
            assert failures == 0
            assert rating == int(answer == parser.normalise(gold))


_CLEAN: dict[str, list[tuple[Any, ...]]] = {}


def _clean_rows(task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[Any]:
    """The rows of a fault-free run of ``task`` (computed once per session and task)."""
    if task not in _CLEAN:
        store = tmp_path / "clean.db"
        with LoopbackServer(_Dice("base", seed=1)) as srv:
            result = run_cli(capsys, *_argv(task, _items(tmp_path, task), srv.base_url, store))
        assert result.status == 0, result.err
        rows = _rows(store, TASKS[task][1])
        _check_slots(task, rows)
        # The respondent's replies vary by slot, so a reply given to the wrong slot shows.
        assert len({r[4] for r in rows}) >= 3
        assert {-1, 0, 1} <= {r[2] for r in rows}
        _CLEAN[task] = rows
    return _CLEAN[task]


FAULTS = {
    "server_error": (FaultConfig(server_error_rate=0.3, seed=5), ()),
    "rate_limit": (FaultConfig(rate_limit_rate=0.3, retry_after_s=0.0, seed=5), ()),
    "malformed": (FaultConfig(malformed_rate=0.3, seed=5), ()),
    "html": (FaultConfig(html_rate=0.3, seed=5), ()),
    "error_body": (FaultConfig(error_body_rate=0.3, seed=5), ()),
    "timeout": (FaultConfig(timeout_rate=0.2, hang_s=3.0, seed=5), ("--timeout", "0.5")),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("task", sorted(TASKS))
def test_transport_faults_never_become_task_data(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str, fault: str
) -> None:
    clean = _clean_rows(task, tmp_path, capsys)
    faults, extra = FAULTS[fault]
    store = tmp_path / "faulted.db"
    with LoopbackServer(_Dice("base", seed=1), faults=faults) as srv:
        items = _items(tmp_path, task)
        result = run_cli(capsys, *_argv(task, items, srv.base_url, store, "--quiet", *extra))
        stats = srv.stats.snapshot()
    assert result.status == 0, result.err
    assert stats["faults"].get(fault, 0) > 0, stats["faults"]
    rows = _rows(store, TASKS[task][1])
    _check_slots(task, rows)
    # The retries a slot needed are recorded with it (extra ``transport_retries``), nothing else.
    assert sum(r[5].pop("transport_retries", 0) for r in rows) > 0
    assert rows == clean


STOPS = {
    "sigkill-before-any-row": (1, (signal.SIGKILL,)),
    "sigkill-after-five-rows": (6, (signal.SIGKILL,)),
    "ctrl-c-twice-after-five-rows": (6, (signal.SIGINT, signal.SIGINT)),
}


@pytest.mark.parametrize("stop", sorted(STOPS))
@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_killed_task_run_resumes_with_every_slot_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str, stop: str
) -> None:
    """Killed (or stopped at once by a second Ctrl-C) while the server holds every request from
    ``hold_after`` on (the probe is request 0) and four requests wait on it: the rows answered
    before stay, none of the held ones is stored, the resumed run asks only the rest."""
    clean = _clean_rows(task, tmp_path, capsys)
    hold_after, signals = STOPS[stop]
    store = tmp_path / "killed.db"
    stored = hold_after - 1
    with LoopbackServer(_Dice("base", seed=1), faults=FaultConfig(hold_after=hold_after)) as srv:
        argv = _argv(task, _items(tmp_path, task), srv.base_url, store)
        with cli_process(argv, cwd=tmp_path, env={"OPENAI_API_KEY": KEY}) as proc:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if srv.stats.held >= 4 and _count(store) >= stored:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, proc.communicate()
            interrupt(proc, *signals)
        assert proc.returncode == (130 if signals[0] == signal.SIGINT else -signal.SIGKILL)
        assert _count(store) == stored
        srv.set_faults(FaultConfig())
        before = srv.stats.snapshot()["requests"]
        resumed = run_cli(capsys, *argv, "--quiet")
        asked = srv.stats.snapshot()["requests"] - before
    assert resumed.status == 0, resumed.err
    assert f"({len(clean) - stored} this session)" in resumed.err
    assert asked == 1 + len(clean) - stored  # the probe, then only the slots not stored
    rows = _rows(store, TASKS[task][1])
    _check_slots(task, rows)
    assert rows == clean


def _empty_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str
) -> tuple[Path, int, str]:
    """A task run whose model answers one item's every repetition with empty content: the
    store, the number of missing slots and the run's summary (standard error)."""
    store = tmp_path / "empty.db"
    n = len(_slots(task))
    with LoopbackServer(_Empty("base", seed=1)) as srv:
        result = run_cli(capsys, *_argv(task, _items(tmp_path, task), srv.base_url, store))
        requests = srv.stats.snapshot()["requests"]
    assert result.status == 0, result.err
    assert requests == n + 1  # the probe and one request per slot: nothing asked again
    rows = _rows(store, TASKS[task][1])
    _check_slots(task, rows)
    empty = [r for r in rows if r[4] == ""]
    assert len(empty) == REPS and all((r[2], r[3]) == (-1, 1) for r in empty)
    return store, sum(r[2] == -1 for r in rows), result.err


def _check_format_failures(
    capsys: pytest.CaptureFixture[str], source: str, task: str, missing: int
) -> None:
    """``metrics`` of ``source`` counts every slot as replied and warns of ``missing`` format
    failures (and of no transport loss)."""
    n = len(_slots(task))
    result = run_cli(capsys, "metrics", source, "--format", "json")
    assert result.status == 0, result.err
    (doc,) = result.json()
    assert (doc["n_total"], doc["n_replied"], doc["n_valid"]) == (n, n, n - missing)
    warnings = " ".join(doc["warnings"])
    assert f"{missing} replies did not parse (format failures" in warnings
    assert "no reply" not in warnings


@pytest.mark.parametrize("task", sorted(TASKS))
def test_an_empty_reply_is_a_format_failure_asked_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str
) -> None:
    store, missing, summary = _empty_run(capsys, tmp_path, task)
    assert f"{missing} missing (rating -1), {missing} unparseable attempts" in summary
    _check_format_failures(capsys, f"{store}:{TASKS[task][1]}", task, missing)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_an_exported_empty_reply_reads_back_as_a_format_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str
) -> None:
    """The task CSV of a run holds an empty reply as ``response`` empty, ``format_valid`` 0,
    ``failures`` 1: read back, it is a format failure as in the store, not a lost slot."""
    store, missing, _ = _empty_run(capsys, tmp_path, task)
    exported = tmp_path / f"empty_{task}.csv"
    result = run_cli(capsys, "export", f"{store}:{TASKS[task][1]}", "-o", str(exported))
    assert result.status == 0, result.err
    with exported.open(newline="", encoding="utf-8") as handle:
        lines = [r for r in csv.DictReader(handle) if r["response"] == ""]
    assert len(lines) == REPS
    assert {(r["format_valid"], r["failures"]) for r in lines} == {("0", "1")}
    _check_format_failures(capsys, str(exported), task, missing)

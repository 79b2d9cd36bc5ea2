"""The capability control's readouts (issue 20, items 3-5): task metrics, paired deltas and
repeat instability, checked against the authors' GPT-4o results in ../shared/reference/controls."""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona_collapse.analysis import (
    AnalysisOptions,
    compare_tasks,
    measure_responses,
    measure_task,
    repeat_instability,
)
from persona_collapse.stats import BootstrapConfig, answer_statistics, item_weights
from persona_collapse.store import load_sources, load_task_sources

from .conftest import reference_path
from .helpers import run_cli

MODELS = ("gpt-4o", "gpt-4o-secure", "gpt-4o-insecure")
VARIANT_OF = {"gpt-4o": "base", "gpt-4o-secure": "secure", "gpt-4o-insecure": "insecure"}
MFQ_FILES = {
    ("base", "persona"): "costa2026/base/gpt-4o_temp01.csv",
    ("secure", "persona"): "costa2026/secure-code/gpt-4o-secure_temp01.csv",
    ("insecure", "persona"): "costa2026/insecure-code/gpt-4o-misaligned_temp01.csv",
    ("base", "none"): "costa2026/base/gpt-4o_temp01_self.csv",
    ("secure", "none"): "costa2026/secure-code/gpt-4o-secure_temp01_self.csv",
    ("insecure", "none"): "costa2026/insecure-code/gpt-4o-misaligned_self.csv",
}
SE_SUFFIXES = ("_se", "_se_item", "_se_rep")
REL_SE = {"_se": 0.15, "_se_item": 0.15, "_se_rep": 0.25}
"""Bootstrap noise allowed in SEs (relative); the repetition parts are a tenth of the
combined SE and noisier between seeds (400 draws)."""


def _expected(name: str) -> list[dict[str, str]]:
    path = reference_path(f"controls/{name}")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _task_file(task: str, model: str) -> str:
    return str(reference_path(f"controls/{task}/{model}_temp01_{task}.csv"))


@pytest.mark.parametrize("task", ["mmlu", "gsm8k"])
@pytest.mark.parametrize("model", MODELS)
def test_task_metrics_equal_the_authors(task: str, model: str) -> None:
    row = next(
        r
        for r in _expected("expected_control_metrics.csv")
        if (r["task"], r["model"]) == (task, model)
    )
    doc = measure_task(load_task_sources(_task_file(task, model))[0])
    for key, text in row.items():
        if key in ("task", "model", "temperature"):
            continue
        if key.endswith(SE_SUFFIXES):
            suffix = next(s for s in SE_SUFFIXES[::-1] if key.endswith(s))
            assert doc[key] == pytest.approx(float(text), rel=REL_SE[suffix]), key
        else:
            assert doc[key] == pytest.approx(float(text), abs=1e-9, rel=0), key


def test_paired_deltas_equal_the_authors() -> None:
    base = load_task_sources(_task_file("mmlu", "gpt-4o"))[0]
    variants = {VARIANT_OF[m]: load_task_sources(_task_file("mmlu", m))[0] for m in MODELS[1:]}
    opts = AnalysisOptions(bootstrap=BootstrapConfig(persona_draws=50, repetition_draws=10))
    doc = compare_tasks(base, variants, opts)
    for row in _expected("expected_variant_deltas.csv"):
        delta = doc["variants"][row["variant"]]["delta"]
        assert delta["n_items"] == int(row["n_items"])
        for name in ("accuracy", "non_unanimity", "gini"):
            assert delta[name] == pytest.approx(float(row[name]), abs=1e-9, rel=0)
            for bound in ("_lo", "_hi"):
                assert abs(delta[name + bound] - float(row[name + bound])) < 0.01, name + bound
            lo, hi = float(row[name + "_lo"]), float(row[name + "_hi"])
            if min(abs(lo), abs(hi)) > 0.005:  # a bound this close to 0 may fall either side
                assert delta[name + "_sig"] == (row[name + "_sig"] == "True")


def _comparison_rows(instrument: str) -> list[dict[str, str]]:
    return [
        r
        for r in _expected("expected_instrument_comparison.csv")
        if r["family"] == "gpt-4o" and r["instrument"] == instrument
    ]


def _close(value: float | None, text: str) -> bool:
    if text == "":
        return value is None or not np.isfinite(value)
    return value is not None and abs(value - float(text)) < 1e-9


@pytest.mark.parametrize("instrument", ["MMLU", "GSM8K"])
def test_task_instability_equals_the_instrument_comparison(instrument: str) -> None:
    task = instrument.lower()
    for row in _comparison_rows(instrument):
        model = next(m for m, v in VARIANT_OF.items() if v == row["variant"])
        opts = AnalysisOptions(bootstrap=BootstrapConfig(persona_draws=10, repetition_draws=0))
        doc = measure_task(load_task_sources(_task_file(task, model))[0], opts)
        assert _close(doc["accuracy_valid"], row["accuracy"])
        for key, value in doc["instability"].items():
            assert _close(value, row[key]), (model, key)


def test_mfq_instability_equals_the_instrument_comparison() -> None:
    rows = _comparison_rows("MFQ")
    assert len(rows) == 6
    opts = AnalysisOptions(bootstrap=BootstrapConfig(persona_draws=10, repetition_draws=0))
    for row in rows:
        source = load_sources(str(reference_path(MFQ_FILES[row["variant"], row["conditioning"]])))[
            0
        ]
        unstable = repeat_instability(source)
        assert unstable is not None
        for key, value in unstable.to_dict().items():
            assert _close(value, row[key]), (row["variant"], row["conditioning"], key)
        with warnings.catch_warnings():  # a self source has no spread across personas (S NaN)
            warnings.simplefilter("ignore", RuntimeWarning)
            R = float(measure_responses(source, opts).R[0])
        assert _close(R, row["R"])


def test_metrics_json_of_a_task_csv_has_the_issue_keys(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(
        capsys,
        "metrics",
        _task_file("mmlu", "gpt-4o"),
        "--format",
        "json",
        "--persona-draws",
        "50",
        "--repetition-draws",
        "20",
    )
    assert result.status == 0, result.err
    (doc,) = json.loads(result.out)
    keys = {"n_total", "n_valid", "n_items", "format_valid_rate", "accuracy_all", "accuracy_valid"}
    keys |= {"majority_accuracy", "non_unanimity_rate", "mean_distinct_answers", "mean_gini"}
    keys |= {f"{n}{s}" for n in ("accuracy", "non_unanimity", "gini") for s in SE_SUFFIXES}
    assert keys | {"n_replied", "reply_rate", "instability", "warnings"} <= set(doc)
    assert doc["n_valid"] == 2216 and doc["warnings"]  # 64 replies did not parse


def test_metrics_on_mfq_gains_instability(capsys: pytest.CaptureFixture[str]) -> None:
    source = str(reference_path(MFQ_FILES["base", "none"]))
    result = run_cli(capsys, "metrics", source, "--format", "json", "--persona-draws", "10")
    assert result.status == 0, result.err
    assert json.loads(result.out)[0]["instability"]["n_cells"] == 30


def test_compare_task_csv_output(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(
        capsys,
        "compare",
        "--base",
        _task_file("gsm8k", "gpt-4o"),
        "--variant",
        f"insecure={_task_file('gsm8k', 'gpt-4o-insecure')}",
        "--format",
        "csv",
        "--persona-draws",
        "20",
        "--repetition-draws",
        "5",
    )
    assert result.status == 0, result.err
    rows = list(csv.DictReader(result.out.splitlines()))
    assert [r["variant"] for r in rows] == ["base", "insecure"]
    assert float(rows[1]["accuracy"]) == pytest.approx(0.908 - 0.965, abs=1e-12)


def test_mixing_task_and_questionnaire_sources_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mfq = str(reference_path(MFQ_FILES["base", "none"]))
    result = run_cli(capsys, "metrics", _task_file("gsm8k", "gpt-4o"), mfq)
    assert result.status == 2
    assert "mixes task sources" in result.err and "Traceback" not in result.err


# -- synthetic data: conventions, a stored task run, bad files -----------------------------


def test_majority_ties_go_to_the_smallest_answer_and_any_correct_row_counts() -> None:
    counts = np.array([[2.0, 2.0, 1.0], [3.0, 0.0, 0.0]])  # item 0: A, B tie; item 1: one answer
    correct = np.array([[False, True, False], [True, False, False]])
    stats = answer_statistics(counts, correct, np.array([1.0, 0.0]))
    assert stats["majority_accuracy"] == 0.5  # item 0's majority is A (wrong), item 1's right
    assert stats["accuracy_all"] == pytest.approx(5 / 9)
    assert stats["accuracy_valid"] == pytest.approx(5 / 8)
    assert stats["non_unanimity_rate"] == 0.5
    assert stats["mean_gini"] == pytest.approx((1 - (0.16 + 0.16 + 0.04)) / 2)
    assert stats["mean_distinct_answers"] == 2.0


def test_stratified_item_draws_keep_each_strata_size() -> None:
    strata = np.array([0, 1, 0, 1, 1, 2])
    weights = item_weights(strata, 200, np.random.default_rng(0))
    for s in range(3):
        assert np.all(weights[:, strata == s].sum(axis=1) == np.sum(strata == s))
    assert np.all(weights[:, strata == 2] == 1)


TINY_TASK = {
    "name": "tiny-task",
    "elicitation": {
        "kind": "task",
        "parser": "letter",
        "answers": ["A", "B", "C", "D"],
        "max_tokens": 1,
        "logprobs": False,
        "attempt_policy": "once",
    },
    "subscales": ["math", "geo"],
    "items": [
        {"id": 1, "subscale": "math", "text": "2 + 2 = ?\nA) 3\nB) 4\nC) 5\nD) 22", "answer": "B"},
        {
            "id": 2,
            "subscale": "geo",
            "text": "The capital of France?\nA) Rome\nB) Madrid\nC) Paris",
            "answer": "C",
        },
    ],
}


def _task_store(tmp_path: Path) -> Path:
    """A store with one task run written per the task-slot contract."""
    from persona_collapse.store import ResponseRow, ResponseStore, RunInfo

    definition = tmp_path / "tiny-task.json"
    definition.write_text(json.dumps(TINY_TASK), encoding="utf-8")
    gold = {1: "B", 2: "C"}
    replies = {1: ["B", "B", "A", "x"], 2: ["C", "C", "C", None]}  # "x": no parse; None: lost
    rows = []
    for item, texts in replies.items():
        for rep, text in enumerate(texts, start=1):
            answer = text if text in ("A", "B", "C", "D") else None
            rating = -1 if answer is None else int(answer == gold[item])
            rows.append(
                ResponseRow(
                    persona_id=-1,
                    item_id=item,
                    repetition=rep,
                    rating=rating,
                    failures=int(text is not None and answer is None),
                    raw_text=text,
                    extra={"answer": answer, "gold": gold[item]},
                )
            )
    db = tmp_path / "tasks.db"
    with ResponseStore(db) as store:
        run = RunInfo("tiny", "sim/base", "sim", mode="self", instrument=str(definition))
        store.create_run(run)
        store.add_responses("tiny", rows)
    return db


def test_a_stored_task_run_is_read_per_the_contract(tmp_path: Path) -> None:
    db = _task_store(tmp_path)
    (task,) = load_task_sources(f"{db}:tiny")
    assert task.subject.tolist() == ["math"] * 4 + ["geo"] * 4
    doc = measure_task(task, AnalysisOptions(bootstrap=BootstrapConfig(persona_draws=20)))
    assert (doc["n_total"], doc["n_replied"], doc["n_valid"], doc["n_items"]) == (8, 7, 6, 2)
    assert doc["format_valid_rate"] == pytest.approx(6 / 7)
    assert doc["accuracy_all"] == pytest.approx(5 / 7)  # the lost slot is no reply: left out
    assert doc["majority_accuracy"] == 1.0 and doc["non_unanimity_rate"] == 0.5
    assert doc["instability"]["mean_gini_norm"] == pytest.approx(doc["mean_gini"] / 0.75)
    assert any("no reply" in w for w in doc["warnings"])
    assert any("did not parse" in w for w in doc["warnings"])


def test_metrics_reads_a_store_of_task_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _task_store(tmp_path)
    result = run_cli(capsys, "metrics", str(db), "--format", "csv", "--persona-draws", "20")
    assert result.status == 0, result.err
    rows: list[dict[str, Any]] = list(csv.DictReader(result.out.splitlines()))
    assert rows[0]["source"] == "tasks.db:tiny [SIMULATED]"  # a sim/ run says so
    assert rows[0]["n_valid"] == "6"


_TASK_HEADER = "item_id,run_index,answer,gold,correct,format_valid,failures,response,collected_at"


def _refused_task_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str], *rows: str) -> str:
    """``metrics`` of a task CSV holding ``rows``: exit 2 and one line on stderr, returned."""
    bad = tmp_path / "model_mmlu.csv"
    bad.write_text("\n".join([_TASK_HEADER, *rows]) + "\n", encoding="utf-8")
    result = run_cli(capsys, "metrics", str(bad))
    assert result.status == 2
    assert len(result.err.strip().splitlines()) == 1
    return result.err


def test_a_bad_task_csv_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused_task_csv(tmp_path, capsys, "0,1,,A,1,0,0,To,t")
    assert "line 2" in err and "correct is 1 but format_valid is 0" in err


def test_a_task_csv_with_a_non_integer_failures_cell_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``failures`` says whether a row replied, so a cell that is no integer is refused."""
    err = _refused_task_csv(tmp_path, capsys, "0,1,A,A,1,1,0,A,t", "0,2,,A,0,0,x,,t")
    assert "line 3" in err and "failures 'x' is not an integer" in err


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        ("0,1,B,C,1,1,0,B,t", "correct is 1 but the answer is not the gold"),
        ("0,1,c,C,0,1,0,c,t", "correct is 0 but the answer is the gold"),
        ('0,1,10800,"10,800",0,1,0,#### 10800,t', "correct is 0 but the answer is the gold"),
    ],
)
def test_a_correct_column_that_contradicts_answer_and_gold_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, rule: str
) -> None:
    err = _refused_task_csv(tmp_path, capsys, row)
    assert "line 2" in err and rule in err
    # The published rule: "10800" is the gold "10,800", a letter in either case is itself.
    good = tmp_path / "good_task.csv"
    good.write_text(
        f'{_TASK_HEADER}\n0,1,10800,"10,800",1,1,0,#### 10800,t\n1,1,b,B,1,1,0,b,t\n2,1,A,B,0,1,0,A,t\n',
        encoding="utf-8",
    )
    assert run_cli(capsys, "metrics", str(good), "--persona-draws", "20").status == 0


def test_load_task_sources_opens_each_source_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona_collapse.store import ResponseStore

    db = _task_store(tmp_path)
    folder = tmp_path / "files"
    folder.mkdir()
    for model in MODELS[:2]:
        src = Path(_task_file("gsm8k", model))
        (folder / src.name).write_bytes(src.read_bytes())
    names = sorted(p.name for p in folder.iterdir())
    opened: list[str] = []
    for_reading = ResponseStore.for_reading.__func__  # type: ignore[attr-defined]
    open_file = Path.open

    def store(cls: type[ResponseStore], path: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(Path(path).name)
        return for_reading(cls, path, *args, **kwargs)

    def whole(path: Path) -> bytes:
        opened.append(path.name)
        with open_file(path, "rb") as handle:
            return handle.read()

    def part(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path.suffix == ".csv":
            opened.append(f"{path.name} (part)")
        return open_file(path, *args, **kwargs)

    monkeypatch.setattr(ResponseStore, "for_reading", classmethod(store))
    monkeypatch.setattr(Path, "read_bytes", whole)
    monkeypatch.setattr(Path, "open", part)
    for spec in (str(db), f"{db}:tiny"):
        opened.clear()
        assert len(load_task_sources(spec)) == 1 and opened == ["tasks.db"]
    opened.clear()
    assert [t.label for t in load_task_sources(str(folder))] == [Path(n).stem for n in names]
    assert opened == names
    # A lone file: a peek at its first bytes (a CSV or a store?), then one whole read.
    opened.clear()
    assert len(load_task_sources(str(folder / names[0]))) == 1
    assert opened == [f"{names[0]} (part)", names[0]]


def _task_csv(path: Path, rows: list[tuple[int, int, str, str]]) -> str:
    """A task CSV of ``(item_id, run_index, answer, gold)`` rows, ``correct`` consistent."""
    lines = [_TASK_HEADER]
    for item, rep, answer, gold in rows:
        lines.append(f"{item},{rep},{answer},{gold},{int(answer == gold)},1,0,{answer},t")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_an_item_whose_rows_disagree_on_its_gold_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [(0, 1, "A", "A"), (0, 2, "A", "B"), (1, 1, "C", "C"), (1, 2, "C", "C")]
    result = run_cli(capsys, "metrics", _task_csv(tmp_path / "m_mmlu.csv", rows))
    assert result.status == 2 and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "line 3" in lines[0] and "item 0" in lines[0]
    assert "gold" in lines[0]


def test_compare_refuses_shared_items_whose_gold_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [(i, r, "A", "A") for i in range(4) for r in (1, 2)]
    variant = [(i, r, "A", "B" if i == 2 else "A") for i in range(4) for r in (1, 2)]
    same = [(i, r, "A", "A") for i in range(4) for r in (1, 2)]
    args = ["--persona-draws", "20", "--repetition-draws", "5"]
    b = _task_csv(tmp_path / "b_mmlu.csv", base)
    ok = run_cli(
        capsys,
        "compare",
        "--base",
        b,
        "--variant",
        f"v={_task_csv(tmp_path / 's_mmlu.csv', same)}",
        *args,
    )
    assert ok.status == 0, ok.err
    v = _task_csv(tmp_path / "v_mmlu.csv", variant)
    result = run_cli(capsys, "compare", "--base", b, "--variant", f"v={v}", *args)
    assert result.status == 2 and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "item 2" in lines[0] and "gold" in lines[0]


def test_compare_counts_the_items_left_out_on_each_side(tmp_path: Path) -> None:
    base = [(i, r, "A", "A") for i in range(4) for r in (1, 2)]  # items 0-3
    variant = [(i, r, "A", "A") for i in range(2, 6) for r in (1, 2)]  # items 2-5
    b = load_task_sources(_task_csv(tmp_path / "b_mmlu.csv", base))[0]
    v = load_task_sources(_task_csv(tmp_path / "v_mmlu.csv", variant))[0]
    opts = AnalysisOptions(bootstrap=BootstrapConfig(persona_draws=20, repetition_draws=5))
    doc = compare_tasks(b, {"v": v}, opts, draws=50)
    assert doc["variants"]["v"]["delta"]["n_items"] == 2
    [left] = [w for w in doc["warnings"] if "not on both sides" in w]
    assert "2 base items and 2 variant items are not on both sides" in left
    assert "the 2 shared items" in left


def test_slots_with_no_reply_are_left_out_of_accuracy_not_counted_wrong(tmp_path: Path) -> None:
    """A slot no reply reached (no response, no answer: a transport loss) says nothing about
    the model: accuracy_all is over the replies (a reply that did not parse counts wrong)."""
    lines = [_TASK_HEADER]
    for item in range(4):
        lines.append(f"{item},1,A,A,1,1,0,A,t")  # replied, right
        lines.append(f"{item},2,,A,0,0,0,To,t")  # replied, did not parse: wrong
        lines += [f"{item},{rep},,A,0,0,0,,t" for rep in range(3, 11)]  # no reply
    path = tmp_path / "lossy_mmlu.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    [task] = load_task_sources(str(path))
    opts = AnalysisOptions(bootstrap=BootstrapConfig(persona_draws=20, repetition_draws=5))
    doc = measure_task(task, opts)
    assert (doc["n_total"], doc["n_replied"], doc["n_valid"]) == (40, 8, 4)
    assert doc["accuracy_all"] == pytest.approx(0.5)  # 4 right of 8 replies, not of 40 slots
    assert any("32 of 40 slots have no reply" in w and "left out" in w for w in doc["warnings"])
    delta = compare_tasks(task, {"same": task}, opts, draws=50)["variants"]["same"]["delta"]
    assert delta["accuracy"] == pytest.approx(0.0)


def test_the_metrics_table_says_n_a_for_readouts_with_no_eligible_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One repetition per item: no item can disagree with itself, so the instability
    readouts and their SEs are undefined and the table says n/a, never nan."""
    path = _task_csv(tmp_path / "once_mmlu.csv", [(i, 1, "A", "A") for i in range(5)])
    result = run_cli(capsys, "metrics", path, "--persona-draws", "20")
    assert result.status == 0, result.err
    assert not re.search(r"\bnan\b", result.out) and "n/a" in result.out

"""``runs STORE``: one row per run with progress, missing ratings, cost, dates, SIMULATED."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from persona_collapse.backends import price_for
from persona_collapse.cli import _runs_command
from persona_collapse.errors import DataError
from persona_collapse.store import ResponseRow, ResponseStore, RunInfo, run_summaries

from .helpers import Result, run_cli


def _runs(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    parser = argparse.ArgumentParser()
    _runs_command.register(parser.add_subparsers())
    args = parser.parse_args(["runs", *argv])
    status = args.handler(args)
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)


@pytest.fixture
def store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A store with a complete simulated run and a partial priced one."""
    path = tmp_path / "runs.db"
    personas = tmp_path / "p.json"
    personas.write_text(json.dumps(["a sailor", "a baker", "a judge"]), encoding="utf-8")
    ran = run_cli(
        capsys, "run", "sim/insecure", "--personas", str(personas), "--reps", "2",
        "--store", str(path), "--quiet",
    )  # fmt: skip
    assert ran.status == 0, ran.err
    with ResponseStore(path) as st:
        st.create_run(
            RunInfo(
                run_id="gpt4o-pilot",
                model="openai/gpt-4o-2024-08-06",
                backend="openai",
                variant="base",
                family="GPT-4o",
                settings={"reps": 2, "n_personas": 4, "temperature": 0.1},
                created="2026-01-01T00:00:00+00:00",
            )
        )
        st.add_responses(
            "gpt4o-pilot",
            [
                ResponseRow(0, 1, 1, 3, 0, "3", None, "2026-01-01T00:01:00", 10.0, 200, 1),
                ResponseRow(0, 1, 2, -1, 11, "x", None, "2026-01-01T00:02:00", 10.0, 2400, 74),
                ResponseRow(1, 1, 1, 4, 0, "4", None, "2026-01-01T00:03:00", 10.0, 200, 1),
            ],
        )
    return path


def test_one_row_per_run_as_json(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    result = _runs(capsys, str(store), "--format", "json")
    assert result.status == 0
    rows = {d["run_id"]: d for d in result.json()}
    assert set(rows) == {"gpt4o-pilot", "sim-insecure_insecure_persona"}

    sim = rows["sim-insecure_insecure_persona"]
    assert sim["model"] == "sim/insecure" and sim["variant"] == "insecure"
    assert sim["slots_done"] == sim["slots_total"] == 3 * 30 * 2
    assert sim["remaining"] == 0 and sim["simulated"] is True
    assert sim["cost_usd"] == 0.0

    pilot = rows["gpt4o-pilot"]
    assert (pilot["slots_done"], pilot["slots_total"], pilot["missing"]) == (3, 4 * 30 * 2, 1)
    assert pilot["method"] == "sample" and pilot["family"] == "GPT-4o"
    assert pilot["created"] == "2026-01-01T00:00:00+00:00"
    assert pilot["updated"] == "2026-01-01T00:03:00"
    assert pilot["simulated"] is False
    price = price_for("openai/gpt-4o-2024-08-06")
    assert price is not None
    assert pilot["cost_usd"] == pytest.approx(price.cost(2800, 76))
    assert price.source in pilot["cost_note"]


def test_table_and_csv(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    table = _runs(capsys, str(store))
    assert table.status == 0
    assert "gpt4o-pilot" in table.out and "3/240" in table.out and "SIMULATED" in table.out
    csv = _runs(capsys, str(store), "--format", "csv")
    lines = csv.out.strip().splitlines()
    assert lines[0].startswith("run_id,model,method,variant,family,slots_done,slots_total")
    assert len(lines) == 3


def test_unknown_price_and_no_tokens(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with ResponseStore(path) as st:
        st.create_run(RunInfo(run_id="ft", model="openai/my-finetune", backend="openai"))
        st.add_responses("ft", [ResponseRow(0, 1, 1, 3, 0, "3", None, "t", None, 10, 1)])
        st.create_run(RunInfo(run_id="imported", model="gpt-4o", backend="", source="x.csv"))
        st.add_responses("imported", [ResponseRow(0, 1, 1, 3)])
        docs = {s.run.run_id: _runs_command.summary_document(s) for s in run_summaries(st)}
    assert docs["ft"]["cost_usd"] is None and "PERSONA_COLLAPSE_PRICES" in docs["ft"]["cost_note"]
    assert docs["imported"]["cost_usd"] is None
    assert docs["imported"]["cost_note"] == "no token counts stored"
    assert docs["imported"]["imported_from"] == "x.csv"


def test_store_that_does_not_exist(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(DataError):
        _runs(capsys, str(tmp_path / "nothing.db"))
    assert not (tmp_path / "nothing.db").exists()

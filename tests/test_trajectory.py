"""``trajectory``: the DeepSeek-V3.1 insecure checkpoint series gives the authors' numbers.

Ground truth: ../shared/reference/trajectory/expected_metrics_deepseek-v3.1-insecure.csv
(the authors' S, sigma_bar, R and SEs per step; step 0 is the published base,
step 1500 the published insecure variant).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from persona_collapse.analysis import step_from_label

from .conftest import reference_path
from .helpers import run_cli

BASE = "costa2026/base/deepseek-v3.1_temp01.csv"
INSECURE = "costa2026/insecure-code/deepseek-v3.1-insecure_temp01.csv"
SERIES = "trajectory/deepseek-v3.1-insecure"
EXPECTED = "trajectory/expected_metrics_deepseek-v3.1-insecure.csv"
STEPS = (0, 200, 400, 600, 800, 1000, 1200, 1400, 1500)
FAST = ("--persona-draws", "50", "--repetition-draws", "20")


def _series_args() -> list[str]:
    return [
        f"0={reference_path(BASE)}",
        str(reference_path(SERIES)),
        f"1500={reference_path(INSECURE)}",
    ]


def _expected() -> dict[int, dict[str, str]]:
    with reference_path(EXPECTED).open(newline="", encoding="utf-8") as handle:
        return {int(row["model"].rsplit("step", 1)[1]): row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def series(capsys_module: Any) -> dict[str, Any]:
    """The series measured once with the published bootstrap (2000 and 400 draws)."""
    result = run_cli(capsys_module, "trajectory", *_series_args(), "--format", "json")
    assert result.status == 0, result.err
    doc: dict[str, Any] = result.json()
    return doc


def test_points_are_ordered_by_step(series: dict[str, Any]) -> None:
    assert [p["step"] for p in series["points"]] == list(STEPS)
    assert set(series) == {"points", "warnings"}


@pytest.mark.parametrize("step", STEPS)
def test_each_step_reproduces_the_authors_numbers(step: int, series: dict[str, Any]) -> None:
    want = _expected()[step]
    (point,) = [p for p in series["points"] if p["step"] == step]
    assert point["n_personas"] == int(want["personas"])
    for key, column in (("S", "susceptibility"), ("sigma_bar", "uncertainty"), ("R", "robustness")):
        assert point[key] == pytest.approx(float(want[column]), rel=1e-9, abs=0)
    for key, column in (("S_se", "susceptibility_uncertainty"), ("R_se", "robustness_uncertainty")):
        assert point[key] == pytest.approx(float(want[column]), rel=0.15)
    for key in ("S_corrected", "S_corrected_se", "S_noise_floor", "scale_usage", "warnings"):
        assert key in point
    assert 0 < point["S_noise_floor"] < point["S_corrected"] < point["S"]


def test_the_fall_under_saturation_is_flagged(series: dict[str, Any]) -> None:
    by_step = {p["step"]: p for p in series["points"]}
    assert not by_step[0]["saturated"] and by_step[1500]["saturated"]
    assert [p["step"] for p in series["points"] if p["ceiling_fall"]] == [1500]
    (fall,) = [w for w in series["warnings"] if w.startswith("S fell")]
    assert "step 1200" in fall and "step 1500" in fall and "ceiling" in fall
    assert any("deepseek-v3.1-insecure_temp01: saturated" in w for w in series["warnings"])


def test_table_csv_and_figure(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = [f"0={reference_path(BASE)}", f"1500={reference_path(INSECURE)}", *FAST]
    table = run_cli(capsys, "trajectory", *args, "-o", str(tmp_path / "traj.png"))
    assert table.status == 0, table.err
    assert "1500" in table.out and "75% on 5" in table.out
    assert "saturated" in table.err
    assert (tmp_path / "traj.png").stat().st_size > 0 and (tmp_path / "traj.pdf").exists()
    out = run_cli(capsys, "trajectory", *args, "--format", "csv").out
    rows = list(csv.DictReader(out.splitlines()))
    assert [r["step"] for r in rows] == ["0", "1500"]
    assert rows[1]["saturated"] == "True" and float(rows[1]["share_5"]) == pytest.approx(0.7544)
    assert float(rows[0]["S_corrected"]) < float(rows[0]["S"])


def test_steps_from_names_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert step_from_label("deepseek-v3.1-insecure-step0800_temp01") == 800
    assert step_from_label("runs/ckpt_step_12.csv") == 12
    assert step_from_label("gpt-4o_temp01") is None
    base = str(reference_path(BASE))
    nameless = run_cli(capsys, "trajectory", base, *FAST)
    assert nameless.status == 2 and "STEP=SOURCE" in nameless.err
    twice = run_cli(capsys, "trajectory", f"5={base}", f"5={base}", *FAST)
    assert twice.status == 2 and "step 5 is given twice" in twice.err

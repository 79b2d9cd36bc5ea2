"""The report shows the three diagnostics: scale usage, the corrected S and trajectories.

DeepSeek-V3.1 (../shared/reference) is the published saturated case: its
insecure variant puts 75% of answers on 5, and its checkpoint series rises to
S = 0.97 (step 1200) before falling under saturation to 0.88 (step 1500).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from persona_collapse.analysis import SATURATION_SHARE
from persona_collapse.errors import ConfigError
from persona_collapse.report import build_report, family_verdict, load_study, study_to_toml
from persona_collapse.store import ResponseRow, ResponseStore, RunInfo

from .conftest import reference_path
from .helpers import run_cli, uniform_persona_csv

BASE = "costa2026/base/deepseek-v3.1_temp01.csv"
INSECURE = "costa2026/insecure-code/deepseek-v3.1-insecure_temp01.csv"
SERIES = "trajectory/deepseek-v3.1-insecure"
FAST = "[analysis]\npersona_draws = 60\nrepetition_draws = 10\n"


def _rel(path: Path, folder: Path) -> str:
    return os.path.relpath(path, folder)


def _deepseek_study(folder: Path) -> Path:
    """Base and insecure DeepSeek-V3.1 with its checkpoint series, sources relative to the file."""
    base, insecure = _rel(reference_path(BASE), folder), _rel(reference_path(INSECURE), folder)
    series = _rel(reference_path(SERIES), folder)
    text = (
        'title = "DeepSeek-V3.1"\n'
        + FAST
        + '[[family]]\nname = "DeepSeek-V3.1"\n'
        + f'trajectory = ["0={base}", "{series}", "1500={insecure}"]\n'
        + f'[family.variants.base]\npersona = "{base}"\n'
        + f'[family.variants.insecure]\npersona = "{insecure}"\n'
    )
    path = folder / "study.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def deepseek(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("deepseek")
    build_report(load_study(_deepseek_study(folder)), folder / "report")
    return folder / "report"


def _rows(folder: Path, table: str) -> list[dict[str, str]]:
    with (folder / "tables" / f"{table}.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_scale_usage_table_and_figure(deepseek: Path) -> None:
    rows = {r["variant"]: r for r in _rows(deepseek, "scale_usage")}
    assert float(rows["insecure"]["share_5"]) == pytest.approx(0.754, abs=5e-4)
    assert float(rows["insecure"]["entropy_bits"]) == pytest.approx(1.03, abs=5e-3)
    assert rows["insecure"]["saturated"] == "true" and rows["base"]["saturated"] == "false"
    assert float(rows["insecure"]["kl_bits"]) == pytest.approx(0.78, abs=5e-3)
    assert (deepseek / "figures" / "scale_usage.png").is_file()
    assert (deepseek / "figures" / "scale_usage.pdf").is_file()


def test_corrected_s_next_to_s_and_kl_in_the_changes(deepseek: Path) -> None:
    metrics = {r["variant"]: r for r in _rows(deepseek, "metrics")}
    header = list(metrics["base"])
    assert header.index("S_corrected") == header.index("S_se") + 1
    assert float(metrics["base"]["S_corrected"]) == pytest.approx(0.785, abs=5e-3)
    assert float(metrics["insecure"]["S_corrected"]) == pytest.approx(0.859, abs=5e-3)
    assert float(metrics["insecure"]["S_noise_floor"]) > 0
    (change,) = _rows(deepseek, "changes")
    assert float(change["dS_corrected"]) == pytest.approx(9.4, abs=0.05)
    assert float(change["kl_bits"]) == pytest.approx(0.78, abs=5e-3)
    by_foundation = _rows(deepseek, "metrics_by_foundation")
    assert all(float(r["S_corrected"]) <= float(r["S"]) for r in by_foundation)
    html = (deepseek / "report.html").read_text(encoding="utf-8")
    assert 'data-column="S_corrected"' in html and 'data-column="S_noise_floor"' in html


def test_verdict_flags_saturation_and_the_html_says_so(deepseek: Path) -> None:
    html = (deepseek / "report.html").read_text(encoding="utf-8")
    assert "ratings saturated in insecure" in html
    assert '<li class="flag"><strong>insecure</strong>: saturated: 75% of answers are 5' in html
    assert "<strong>base</strong>: saturated" not in html
    assert f"{SATURATION_SHARE:.0%}" in html


def test_trajectory_figure_and_table(deepseek: Path) -> None:
    assert (deepseek / "figures" / "trajectory_deepseek-v3.1.png").is_file()
    rows = _rows(deepseek, "trajectory")
    assert [int(r["step"]) for r in rows] == [0, 200, 400, 600, 800, 1000, 1200, 1400, 1500]
    peak = max(rows, key=lambda r: float(r["S"]))
    assert (peak["step"], round(float(peak["S"]), 2)) == ("1200", 0.97)
    assert [r["step"] for r in rows if r["ceiling_fall"] == "true"] == ["1500"]
    html = (deepseek / "report.html").read_text(encoding="utf-8")
    assert 'id="trajectories"' in html and 'id="figure-trajectory_deepseek-v3.1"' in html
    steps = {r["role"] for r in _rows(deepseek, "provenance") if r["variant"] == "trajectory"}
    assert steps == {f"step {s}" for s in (0, 200, 400, 600, 800, 1000, 1200, 1400, 1500)}


def test_study_trajectory_round_trips_and_bad_entries_are_one_line(tmp_path: Path) -> None:
    study = load_study(_deepseek_study(tmp_path))
    (fam,) = study.families
    step, source = fam.trajectory[0].split("=", 1)
    assert step == "0" and Path(source).resolve() == reference_path(BASE).resolve()
    again = tmp_path / "again.toml"
    again.write_text(study_to_toml(study), encoding="utf-8")
    assert load_study(again).families == study.families
    base = _rel(reference_path(BASE), tmp_path)
    for entry, message in (
        ('["0=nope.csv"]', "trajectory entry #1"),
        ("3", "must be a list"),
        ("[3]", "entry #1 must be"),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(
            f'[[family]]\nname = "x"\ntrajectory = {entry}\n'
            f'[family.variants.base]\npersona = "{base}"\n',
            encoding="utf-8",
        )
        with pytest.raises(ConfigError, match=message):
            load_study(bad)


def test_noise_floor_is_flagged_in_the_verdict(tmp_path: Path) -> None:
    from persona_collapse.report import analyse_study

    base, other = (
        uniform_persona_csv(tmp_path / "a.csv", personas=40, reps=6, seed=1),
        uniform_persona_csv(tmp_path / "b.csv", personas=40, reps=6, seed=2),
    )
    path = tmp_path / "noise.toml"
    path.write_text(
        FAST + '[[family]]\nname = "noise"\n'
        f'[family.variants.base]\npersona = "{base.name}"\n'
        f'[family.variants.insecure]\npersona = "{other.name}"\n',
        encoding="utf-8",
    )
    (fam,) = analyse_study(load_study(path)).families
    verdict = family_verdict(fam)
    flagged = [f for f in verdict.findings if f.flagged and "noise floor" in f.text]
    assert {f.subject for f in flagged} == {"base", "insecure"}
    assert "S at its noise floor in base, insecure" in verdict.headline
    assert fam.variants["insecure"].measurement.noise_values()["S_corrected"] < 0.2


def _checkpoint_store(path: Path) -> Path:
    """Runs named as ``finetune --measure-every`` names them: step-000000, step-000200, ..."""
    from persona_collapse.instruments import load_instrument

    items = load_instrument("mfq30").item_ids.tolist()
    rng = np.random.default_rng(11)
    with ResponseStore(path) as store:
        for step in (0, 200, 400):
            run = RunInfo(run_id=f"step-{step:06d}", model="hand/x", backend="hand")
            store.create_run(run)
            store.add_responses(
                run.run_id,
                [
                    ResponseRow(
                        persona_id=p,
                        item_id=int(item),
                        repetition=rep,
                        rating=int(min(5, rng.integers(0, 6) + step // 200 * 2)),
                    )
                    for p in range(12)
                    for item in items
                    for rep in (1, 2)
                ],
            )
    return path


def test_a_measure_store_is_a_trajectory_for_the_cli_and_the_study(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = _checkpoint_store(tmp_path / "measure.db")
    series = run_cli(capsys, "trajectory", str(store), "--format", "json")
    assert series.status == 0, series.err
    points = series.json()["points"]
    assert [p["step"] for p in points] == [0, 200, 400]
    assert points[-1]["saturated"] and not points[0]["saturated"]
    path = tmp_path / "s.toml"
    path.write_text(
        FAST + '[[family]]\nname = "ckpt"\ntrajectory = ["measure.db"]\n'
        '[family.variants.base]\npersona = "measure.db:step-000000"\n',
        encoding="utf-8",
    )
    out = build_report(load_study(path), tmp_path / "r")
    (fam,) = out.result.families
    assert fam.trajectory is not None
    assert [p.step for p in fam.trajectory.points] == [0, 200, 400]
    rows = _rows(tmp_path / "r", "trajectory")
    assert [r["source"] for r in rows] == [f"measure.db:step-{s:06d}" for s in (0, 200, 400)]
    sources = {r["role"]: r["source"] for r in _rows(tmp_path / "r", "provenance")}
    assert sources["step 200"].endswith("measure.db:step-000200")

"""Numbers that mean what they say: pairing by persona id, warnings, and the band.

Real data: the published GPT-4o and Qwen3-235B response files of Costa & Vicente
2026 under ../shared/reference (subsets of them are written to tmp_path).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from persona_collapse import analysis
from persona_collapse.analysis import AnalysisOptions, compare_responses, measure_responses
from persona_collapse.stats import BootstrapConfig, published_band
from persona_collapse.store import RunInfo, load_sources

from .conftest import reference_path
from .helpers import run_cli

GPT4O = {
    "base": "costa2026/base/gpt-4o_temp01.csv",
    "secure": "costa2026/secure-code/gpt-4o-secure_temp01.csv",
    "insecure": "costa2026/insecure-code/gpt-4o-misaligned_temp01.csv",
}
QWEN = {
    "base": "costa2026/base/qwen3-235b_temp01.csv",
    "insecure": "costa2026/insecure-code/qwen3-235b-misaligned_temp01.csv",
}
FAST = ("--persona-draws", "100", "--repetition-draws", "10")


def _subset(src: str, dst: Path, personas: slice, drop_rows: int = 0) -> str:
    """The published file ``src`` restricted to the personas ``personas`` (in id order)."""
    frame = pd.read_csv(reference_path(src))
    ids = sorted(frame["persona_id"].unique())[personas]
    frame = frame[frame["persona_id"].isin(ids)]
    if drop_rows:
        frame = frame.iloc[:-drop_rows]
    frame.to_csv(dst, index=False)
    return str(dst)


# -- compare pairs the persona bootstrap by persona id -------------------------------


def test_compare_pairs_by_persona_id_not_position(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The variant answers exactly as the base on every shared persona; the base lacks one
    # persona. Paired by id, every persona replicate of dS is 0; paired by position,
    # persona k of one side meets persona k+1 of the other.
    base = _subset(GPT4O["base"], tmp_path / "base.csv", slice(1, 25))
    variant = _subset(GPT4O["base"], tmp_path / "variant.csv", slice(0, 25))
    result = run_cli(
        capsys,
        "compare",
        "--base",
        base,
        "--variant",
        f"same={variant}",
        "--format",
        "json",
        "--persona-draws",
        "200",
        "--repetition-draws",
        "0",
    )
    assert result.status == 0, result.err
    doc = result.json()
    var = doc["variants"]["same"]
    assert var["delta_pct_se"]["S"] == pytest.approx(0.0, abs=1e-9)
    assert var["delta_pct_se"]["R"] == pytest.approx(0.0, abs=1e-9)
    assert var["personas_left_out"] == 1
    assert doc["pairing"] == {"personas": 24, "left_out": {"base": 0, "same": 1}}
    assert any("different persona sets" in w and "24 shared" in w for w in doc["warnings"])
    assert any("only 24 personas" in w for w in doc["base"]["warnings"])
    assert any("only 25 personas" in w for w in var["metrics"]["warnings"])


def test_dropping_one_persona_keeps_the_paired_se_on_real_data() -> None:
    """GPT-4o base vs secure: SE(dS) with one base persona removed stays near the full one
    (unpaired by position it doubled: 2.1 -> 4.5)."""
    base = load_sources(str(reference_path(GPT4O["base"])))[0]
    secure = load_sources(str(reference_path(GPT4O["secure"])))[0]
    opts = AnalysisOptions(bootstrap=BootstrapConfig(persona_draws=300, repetition_draws=0))
    full = compare_responses(base, {"secure": secure}, opts)
    first = int(base.frame["persona_id"].min())
    cut_base = replace(base, frame=base.frame[base.frame["persona_id"] != first])
    cut = compare_responses(cut_base, {"secure": secure}, opts)
    se_full = full.variants["secure"][2].se("S")[0]
    se_cut = cut.variants["secure"][2].se("S")[0]
    assert se_cut == pytest.approx(se_full, rel=0.25)
    assert cut.paired_personas == 99 and cut.left_out == {"base": 0, "secure": 1}
    # The values themselves still use every persona of each side.
    assert cut.base.n_personas == 99 and cut.variants["secure"][1].n_personas == 100


def test_disjoint_persona_sets_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = _subset(GPT4O["base"], tmp_path / "base.csv", slice(0, 10))
    variant = _subset(GPT4O["insecure"], tmp_path / "variant.csv", slice(10, 20))
    result = run_cli(capsys, "compare", "--base", base, "--variant", f"x={variant}", *FAST)
    assert result.status == 2
    assert len(result.err.strip().splitlines()) == 1 and "persona ids" in result.err


# -- every result carries warnings ----------------------------------------------------


def test_metrics_json_carries_warnings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    few = _subset(GPT4O["base"], tmp_path / "few.csv", slice(0, 10), drop_rows=8)
    full = str(reference_path(GPT4O["base"]))
    result = run_cli(capsys, "metrics", full, few, "--format", "json", *FAST)
    assert result.status == 0, result.err
    clean, small = result.json()
    assert clean["warnings"] == []
    assert any("only 10 personas" in w for w in small["warnings"])
    assert any("2992 of 3000 slots" in w for w in small["warnings"])
    assert result.err == ""  # JSON carries them; stderr stays clean


def test_table_output_prints_warnings_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    few = _subset(GPT4O["base"], tmp_path / "few.csv", slice(0, 10), drop_rows=8)
    result = run_cli(capsys, "metrics", few, *FAST)
    assert result.status == 0, result.err
    lines = result.err.strip().splitlines()
    assert any(ln.startswith("warning: ") and "only 10 personas" in ln for ln in lines)
    assert any("2992 of 3000 slots" in ln for ln in lines)
    assert "warning" not in result.out


def test_profile_json_carries_warnings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    few = _subset(GPT4O["base"], tmp_path / "few.csv", slice(0, 10))
    result = run_cli(capsys, "profile", few, "--format", "json")
    assert result.status == 0, result.err
    (doc,) = result.json()
    assert any("only 10 personas" in w for w in doc["warnings"])


def test_incomplete_store_run_is_counted_against_its_plan() -> None:
    base = load_sources(str(reference_path(GPT4O["base"])))[0]
    opts = AnalysisOptions(bootstrap=BootstrapConfig(persona_draws=20, repetition_draws=0))

    assert analysis.source_warnings(base, measure_responses(base, opts)) == []
    # The last persona never answered: a file cannot tell, the run record can.
    short = replace(base, frame=base.frame.iloc[:-300])
    assert analysis.source_warnings(short, measure_responses(short, opts)) == []
    run = RunInfo(run_id="r", model="m", backend="sim", settings={"reps": 10, "n_personas": 100})
    warned = analysis.source_warnings(replace(short, run=run), measure_responses(short, opts))
    assert any("29700 of 30000 slots" in w and "resume" in w for w in warned)


# -- the band: outside_band, left_band and a base already outside -------------------------


def test_left_band_and_outside_band_on_gpt4o(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(
        capsys,
        "compare",
        "--base",
        str(reference_path(GPT4O["base"])),
        "--variant",
        f"insecure={reference_path(GPT4O['insecure'])}",
        "--format",
        "json",
        *FAST,
    )
    assert result.status == 0, result.err
    doc = result.json()
    ins = doc["variants"]["insecure"]
    assert ins["outside_band"] is True and ins["left_band"] is True
    assert doc["band"]["base_outside"] is False
    assert doc["warnings"] == [] and doc["pairing"]["personas"] == 100
    table = run_cli(
        capsys,
        "compare",
        "--base",
        str(reference_path(GPT4O["base"])),
        "--variant",
        f"insecure={reference_path(GPT4O['insecure'])}",
        "--format",
        "csv",
        *FAST,
    )
    header, base_row, ins_row = (line.split(",") for line in table.out.strip().splitlines())
    assert header[-2:] == ["outside_band", "left_band"]
    assert base_row[-2:] == ["False", ""] and ins_row[-2:] == ["True", "True"]


def test_a_base_outside_the_band_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    args = (
        "compare",
        "--base",
        str(reference_path(QWEN["base"])),
        "--variant",
        f"insecure={reference_path(QWEN['insecure'])}",
        *FAST,
    )
    result = run_cli(capsys, *args, "--format", "json")
    assert result.status == 0, result.err
    doc = result.json()
    band = published_band()
    assert band.outside(doc["base"]["S"])
    ins = doc["variants"]["insecure"]
    assert ins["outside_band"] is True and ins["left_band"] is False
    assert doc["band"]["base_outside"] is True
    assert any("already outside the band" in w for w in doc["warnings"])
    assert any("slots" in w for w in doc["base"]["warnings"]) is False
    assert doc["variants"]["insecure"]["metrics"]["warnings"] == []
    table = run_cli(capsys, *args)
    assert table.status == 0
    assert "already outside the band" in table.out  # the verdict line
    assert "already outside the band" in table.err  # the warning


def test_band_left_needs_the_base_inside() -> None:
    band = published_band()
    inside, above = (band.S_min + band.S_max) / 2, band.S_max + 0.5
    assert band.left(inside, above) and not band.left(above, above + 0.1)
    assert not band.left(inside, inside) and band.outside(above)
    assert np.isfinite(inside)


# -- each source's scale usage is computed once per command ----------------------------


def test_scale_usage_is_computed_once_per_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from persona_collapse.analysis import _compare, _diagnostics, _measure, _trajectory

    calls: list[str] = []

    def counted(responses: Any, options: Any = None) -> Any:
        calls.append(responses.label)
        return _diagnostics.scale_usage(responses, options)

    for module in (_measure, _compare, _trajectory):
        monkeypatch.setattr(module, "scale_usage", counted)
    base, insecure = (load_sources(str(reference_path(GPT4O[k])))[0] for k in ("base", "insecure"))
    opts = AnalysisOptions(bootstrap=BootstrapConfig(persona_draws=20, repetition_draws=0))
    compare_responses(base, {"insecure": insecure}, opts)
    assert sorted(calls) == sorted([base.label, insecure.label])
    calls.clear()
    analysis.measure_trajectory([(0, base), (1, insecure)], opts)
    assert sorted(calls) == sorted([base.label, insecure.label])

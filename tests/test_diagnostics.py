"""Numbers that cannot mislead: scale usage, the saturation warning, the noise floor of S, KL.

Ground truth: the authors' endpoint diagnostics of the DeepSeek-V3.1 insecure
fine-tune (../shared/reference/trajectory/expected_trajectory_points_deepseek.csv),
the issue's examples (GPT-4o base S 0.793 -> 0.790, DeepSeek-V3.1 insecure
0.882 -> 0.859), and estimators written out cell by cell here.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from persona_collapse.analysis import (
    SATURATION_SHARE,
    AnalysisOptions,
    cell_view,
    distribution_cube,
    measure_responses,
    scale_usage,
)
from persona_collapse.instruments import load_instrument
from persona_collapse.stats import (
    BootstrapConfig,
    RatingCube,
    ScaleUsage,
    entropy_bits,
    kl_divergence_bits,
    measure,
)
from persona_collapse.store import load_sources

from .conftest import reference_path
from .helpers import run_cli, uniform_persona_csv

FAST = ("--persona-draws", "50", "--repetition-draws", "20")
DEEPSEEK = {
    "base": "costa2026/base/deepseek-v3.1_temp01.csv",
    "insecure": "costa2026/insecure-code/deepseek-v3.1-insecure_temp01.csv",
}
GPT4O_BASE = "costa2026/base/gpt-4o_temp01.csv"
ENDPOINTS = "trajectory/expected_trajectory_points_deepseek.csv"
BASE_MODELS = (
    "costa2025/claude-haiku-4-5_temp01.csv",
    "costa2025/claude-sonnet-4-5_temp01.csv",
    "costa2025/deepseek-v3_temp01.csv",
    "costa2025/gemini-2.5-flash-lite_temp01.csv",
    "costa2025/gemini-2.5-flash_temp01.csv",
    "costa2025/gpt-4.1-mini_temp01.csv",
    "costa2025/gpt-4.1-nano_temp01.csv",
    "costa2025/gpt-4o-mini_temp01.csv",
    "costa2025/grok-4-fast_temp01.csv",
    "costa2025/grok-4_temp01.csv",
    "costa2025/llama-4-maverick_temp01.csv",
    "costa2025/llama-4-scout_temp01.csv",
    "costa2026/base/deepseek-v3.1_temp01.csv",
    "costa2026/base/gpt-4.1_temp01.csv",
    "costa2026/base/gpt-4o_temp01.csv",
    "costa2026/base/qwen3-235b_temp01.csv",
)
"""The 15-model benchmark of the prior work (12 costa2025 files and the 3 shared base files),
plus Qwen3-235B, the fourth base model of the 2026 paper."""


def _metrics(capsys: pytest.CaptureFixture[str], *sources: str) -> list[dict[str, Any]]:
    result = run_cli(capsys, "metrics", *sources, "--format", "json", *FAST)
    assert result.status == 0, result.err
    docs: list[dict[str, Any]] = result.json()
    return docs


# -- the noise floor: the estimator, cell by cell ------------------------------------------


def test_noise_floor_and_corrected_S_follow_their_definition() -> None:
    rng = np.random.default_rng(7)
    n_p, n_q = 12, 10
    counts = rng.integers(1, 6, size=(n_p, n_q))
    rows = [
        (p, q + 1, int(rng.integers(0, 6)) if q < 5 else int(rng.integers(2, 4)))
        for p in range(n_p)
        for q in range(n_q)
        for _ in range(counts[p, q])
    ]
    pid, iid, rat = (np.array(col) for col in zip(*rows, strict=True))
    cube = RatingCube.from_long(pid, iid, rat)
    meas = measure(
        cube, [0] * 5 + [1] * 5, ("a", "b"), BootstrapConfig(persona_draws=30, repetition_draws=10)
    )
    F, S_star, S = np.zeros(n_q), np.zeros(n_q), np.zeros(n_q)
    for q in range(n_q):
        cells = [rat[(pid == p) & (iid == q + 1)] for p in range(n_p)]
        means = np.array([c.mean() for c in cells])
        noise = [c.var(ddof=1) / c.size if c.size > 1 else 0.0 for c in cells]
        S[q] = means.std(ddof=1)
        F[q] = np.sqrt(np.mean(noise))
        S_star[q] = np.sqrt(max(0.0, S[q] ** 2 - F[q] ** 2))
    assert meas.S[0] == pytest.approx(S.mean(), abs=1e-12)
    assert meas.noise_floor == pytest.approx([F.mean(), F[:5].mean(), F[5:].mean()], abs=1e-12)
    assert meas.S_corrected == pytest.approx(
        [S_star.mean(), S_star[:5].mean(), S_star[5:].mean()], abs=1e-12
    )
    assert np.all(meas.S_corrected <= meas.S + 1e-15)
    assert np.all(meas.S_corrected_se > 0)


def test_no_persona_effect_gives_S_corrected_near_0_and_the_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = uniform_persona_csv(tmp_path / "uniform.csv", personas=100, reps=10, seed=3)
    (doc,) = _metrics(capsys, str(path))
    # Uniform 0..5 has variance 35/12; a mean of 10 has SD sqrt(35/120) = 0.54: pure noise.
    assert doc["S"] == pytest.approx(0.54, abs=0.03)
    assert doc["S_noise_floor"] == pytest.approx(0.54, abs=0.03)
    assert doc["S_corrected"] < 0.15
    assert any("S is at its noise floor" in w for w in doc["warnings"])
    table = run_cli(capsys, "metrics", str(path), *FAST)
    assert "S is at its noise floor" in table.err and "S*" in table.out


def test_gpt4o_base_gives_no_warning_and_the_issue_s_correction(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gpt4o, insecure = _metrics(
        capsys, str(reference_path(GPT4O_BASE)), str(reference_path(DEEPSEEK["insecure"]))
    )
    assert gpt4o["warnings"] == []
    assert round(gpt4o["S"], 3) == 0.793 and round(gpt4o["S_corrected"], 3) == 0.790
    assert round(insecure["S"], 3) == 0.882 and round(insecure["S_corrected"], 3) == 0.859
    for doc in (gpt4o, insecure):
        assert 0 < doc["S_noise_floor"] < doc["S_corrected"] < doc["S"]
        for values in doc["foundations"].values():
            assert values["S_corrected"] <= values["S"] and values["S_noise_floor"] > 0


def test_corrected_S_se_comes_from_the_same_bootstrap_as_S() -> None:
    (resp,) = load_sources(str(reference_path(GPT4O_BASE)))
    meas = measure_responses(resp, AnalysisOptions(BootstrapConfig()))
    # The floor is small and nearly constant across resamples: both SEs agree closely.
    assert meas.S_corrected_se[0] == pytest.approx(meas.S_se[0], rel=0.05)
    assert meas.repetition_draws is not None
    assert meas.repetition_draws.S_corrected.shape == meas.repetition_draws.S.shape


# -- scale usage -----------------------------------------------------------------------------


def _expected_endpoints() -> dict[int, dict[str, str]]:
    with reference_path(ENDPOINTS).open(newline="", encoding="utf-8") as handle:
        return {int(row["step"]): row for row in csv.DictReader(handle)}


@pytest.mark.parametrize(("step", "variant"), [(0, "base"), (1500, "insecure")])
def test_scale_usage_equals_the_authors_endpoint_diagnostics(
    step: int, variant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    want = _expected_endpoints()[step]
    (doc,) = _metrics(capsys, str(reference_path(DEEPSEEK[variant])))
    usage = doc["scale_usage"]
    for key in ("entropy_bits", "top1_share", "endpoint_mass"):
        assert usage[key] == pytest.approx(float(want[key]), abs=1e-12)
    for k in range(6):
        assert usage["shares"][str(k)] == pytest.approx(float(want[f"frac_{k}"]), abs=1e-12)
    assert usage["top1_rating"] == int(want["top1_rating"])
    assert usage["n_responses"] == int(want["n_responses"])
    assert usage["n_invalid"] == int(want["n_invalid"])


def test_scale_usage_in_table_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    source = str(reference_path(GPT4O_BASE))
    table = run_cli(capsys, "metrics", source, *FAST)
    assert table.status == 0 and "scale usage: 0 0.2%, 1 14.2%" in table.out
    assert "entropy 2.29 bits" in table.out
    out = run_cli(capsys, "metrics", source, "--format", "csv", *FAST).out
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == 6 and rows[0]["foundation"] == "all"
    assert float(rows[0]["share_4"]) == pytest.approx(0.2928, abs=1e-4)
    assert float(rows[0]["S_corrected"]) < float(rows[0]["S"])
    for key in ("entropy_bits", "top1_share", "top1_rating", "endpoint_mass", "n_invalid"):
        assert rows[0][key] != ""


def test_entropy_and_top1_of_hand_counts() -> None:
    usage = ScaleUsage(
        values=(0, 1, 2, 3), counts=np.array([1.0, 1, 2, 4]), n_responses=9, n_invalid=1
    )
    assert usage.shares == pytest.approx([0.125, 0.125, 0.25, 0.5])
    assert usage.entropy_bits == pytest.approx(1.75)
    assert usage.top1_share == 0.5 and usage.top1_rating == 3
    assert usage.endpoint_mass == pytest.approx(0.625)
    assert entropy_bits([0.5, 0.5, 0.0]) == pytest.approx(1.0)


# -- saturation --------------------------------------------------------------------------------


def test_saturation_fires_on_deepseek_insecure_in_metrics_and_compare(
    capsys: pytest.CaptureFixture[str],
) -> None:
    insecure = str(reference_path(DEEPSEEK["insecure"]))
    (doc,) = _metrics(capsys, insecure)
    assert doc["scale_usage"]["top1_share"] >= SATURATION_SHARE
    (warning,) = [w for w in doc["warnings"] if "saturated" in w]
    assert "75% of answers are 5" in warning and "ceiling" in warning
    args = ("compare", "--base", str(reference_path(DEEPSEEK["base"])))
    result = run_cli(capsys, *args, "--variant", f"insecure={insecure}", "--format", "json", *FAST)
    assert result.status == 0, result.err
    cmp = result.json()
    assert any("saturated" in w for w in cmp["variants"]["insecure"]["metrics"]["warnings"])
    assert not any("saturated" in w for w in cmp["base"]["warnings"])
    assert any("saturated" in w for w in cmp["warnings"])
    table = run_cli(capsys, *args, "--variant", f"insecure={insecure}", *FAST)
    assert "saturated" in table.err and "75% on 5" in table.out


def test_saturation_fires_on_none_of_the_base_models(capsys: pytest.CaptureFixture[str]) -> None:
    docs = _metrics(capsys, *(str(reference_path(f)) for f in BASE_MODELS))
    assert len(docs) == len(BASE_MODELS)
    for doc in docs:
        assert not any("saturated" in w for w in doc["warnings"]), doc["source"]
        assert doc["scale_usage"]["top1_share"] < SATURATION_SHARE
    top = max(docs, key=lambda d: d["scale_usage"]["top1_share"])
    assert top["source"] == "gpt-4.1-nano_temp01" and top["scale_usage"]["top1_rating"] == 4
    assert round(top["scale_usage"]["top1_share"], 2) == 0.62


# -- KL between variants and dS on the corrected scale ----------------------------------


def test_kl_divergence_is_add_one_smoothed_and_in_bits() -> None:
    p, q = np.array([3.0, 0, 1]), np.array([0.0, 2, 2])
    P, Q = (p + 1) / 7, (q + 1) / 7
    assert kl_divergence_bits(p, q) == pytest.approx(float(np.sum(P * np.log2(P / Q))))
    assert kl_divergence_bits(p, p) == 0.0
    assert np.isfinite(kl_divergence_bits([5.0, 0, 0], [0.0, 0, 5]))


def test_compare_gives_kl_and_the_corrected_change(capsys: pytest.CaptureFixture[str]) -> None:
    base, insecure = (str(reference_path(DEEPSEEK[v])) for v in ("base", "insecure"))
    args = ("compare", "--base", base, "--variant", f"insecure={insecure}")
    doc = run_cli(capsys, *args, "--variant", f"self={base}", "--format", "json", *FAST).json()
    ins = doc["variants"]["insecure"]
    counts = {
        name: np.bincount(pd.read_csv(path)["rating"].to_numpy(), minlength=6)
        for name, path in (("base", base), ("insecure", insecure))
    }
    assert ins["kl_bits"] == pytest.approx(kl_divergence_bits(counts["insecure"], counts["base"]))
    assert doc["variants"]["self"]["kl_bits"] == 0.0
    S_star = ins["metrics"]["S_corrected"] / doc["base"]["S_corrected"]
    assert ins["delta_pct"]["S_corrected"] == pytest.approx((S_star - 1) * 100)
    assert ins["delta_pct_se"]["S_corrected"] > 0
    assert ins["delta_pct"]["S_corrected"] < ins["delta_pct"]["S"]  # part of dS is dR showing
    for values in ins["foundations"].values():
        assert "S_corrected" in values["delta_pct"]
    out = run_cli(capsys, *args, "--format", "csv", *FAST).out
    rows = list(csv.DictReader(out.splitlines()))
    assert rows[1]["kl_bits"] and rows[1]["dS_corrected_pct"] and rows[1]["top1_rating"] == "5"


# -- logprob runs: exact cell means carry no floor ---------------------------------------


def _logprob_store(path: Path, n_personas: int = 20) -> str:
    from persona_collapse.store import ResponseRow, ResponseStore, RunInfo

    items = load_instrument("mfq30").item_ids.tolist()
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.full(6, 0.8), size=(n_personas, len(items)))
    run = RunInfo(run_id="lp", model="hand/lp", backend="hand", method="logprobs")
    with ResponseStore(path) as store:
        store.create_run(run)
        store.add_responses(
            run.run_id,
            [
                ResponseRow(
                    persona_id=p,
                    item_id=int(item),
                    repetition=1,
                    rating=int(np.argmax(probs[p, q])),
                    distribution=probs[p, q].tolist(),
                )
                for p in range(n_personas)
                for q, item in enumerate(items)
            ],
        )
    return f"{path}:{run.run_id}"


def test_logprob_runs_have_no_floor_unless_expected_reps(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = _logprob_store(tmp_path / "lp.db")
    (exact,) = _metrics(capsys, source)
    assert exact["S_noise_floor"] == 0.0 and exact["S_corrected"] == exact["S"]
    (sampled,) = _metrics(capsys, source, "--expected-reps", "10")
    assert sampled["S_corrected"] == sampled["S"] == exact["S"]
    assert 0 < sampled["S_noise_floor"] < 1
    (resp,) = load_sources(source)
    usage = scale_usage(resp)
    assert usage.n_invalid == 0 and usage.n_responses == 20 * 30
    assert sum(exact["scale_usage"]["shares"].values()) == pytest.approx(1.0)
    assert exact["scale_usage"]["top1_share"] == pytest.approx(float(usage.shares.max()))
    # Re-weighted to T = 0.5, the pooled shares are those the report's cell view draws.
    cooler = AnalysisOptions(reweight_temperature=0.5)
    assert scale_usage(resp, cooler).shares == pytest.approx(
        cell_view(resp, cooler).answer_share, abs=1e-12
    )
    assert scale_usage(resp, cooler).top1_share > usage.top1_share


def test_logprob_usage_counts_personas_the_cube_drops(tmp_path: Path) -> None:
    # Usage pools every stored distribution (each renormalised), also of a persona
    # without a distribution for every item, which the distribution cube leaves out.
    (resp,) = load_sources(_logprob_store(tmp_path / "lp.db", n_personas=4))
    frame = resp.frame.copy()
    last = frame.index[frame["persona_id"] == 3][0]
    frame.at[last, "distribution"] = None
    scaled = frame["distribution"].map(lambda d: None if d is None else [2 * p for p in d])
    frame["distribution"] = scaled
    holed = replace(resp, frame=frame)
    usage = scale_usage(holed)
    assert usage.n_responses == 4 * 30 and usage.n_invalid == 1
    assert usage.counts.sum() == pytest.approx(4 * 30 - 1)
    stored = np.array([d for d in frame["distribution"] if d is not None]) / 2
    assert usage.counts == pytest.approx(stored.sum(axis=0), abs=1e-12)
    assert distribution_cube(holed, load_instrument("mfq30")).persona_ids.tolist() == [0, 1, 2]

"""The published numbers, reproduced from the published raw data through the command line.

Ground truth: ../shared/reference/published.json ("exact" recomputed from the
raw CSVs, "paper" the 2-decimal tables of Costa & Vicente 2026).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from persona_collapse.stats import published_band

from .conftest import reference_path
from .helpers import run_cli

FOUNDATIONS = ("harm", "fairness", "loyalty", "authority", "purity")


def _variants(published: dict[str, Any]) -> list[dict[str, Any]]:
    return list(published["variants"])


@pytest.fixture(scope="module")
def measured(published: dict[str, Any], capsys_module: Any) -> dict[str, dict[str, Any]]:
    files = [str(reference_path(v["file"])) for v in _variants(published)]
    result = run_cli(capsys_module, "metrics", *files, "--format", "json")
    assert result.status == 0, result.err
    docs = result.json()
    return {v["file"]: doc for v, doc in zip(_variants(published), docs, strict=True)}


def test_metrics_json_shape(measured: dict[str, dict[str, Any]]) -> None:
    keys = {"S", "S_se", "sigma_bar", "sigma_bar_se", "R", "R_se"}
    keys |= {"S_corrected", "S_corrected_se", "S_noise_floor"}
    for doc in measured.values():
        assert {"source", "n_personas", "n_items", "foundations"} | keys <= set(doc)
        assert set(doc["foundations"]) == set(FOUNDATIONS)
        for values in doc["foundations"].values():
            assert set(values) == keys
        assert doc["n_personas"] == 100 and doc["n_items"] == 30


@pytest.mark.parametrize("index", range(12))
def test_exact_values_match_published(
    index: int, published: dict[str, Any], measured: dict[str, dict[str, Any]]
) -> None:
    ref = _variants(published)[index]
    doc = measured[ref["file"]]
    for key in ("S", "sigma_bar", "R"):
        assert doc[key] == pytest.approx(ref["exact"][key], rel=1e-9, abs=0)
    for f in FOUNDATIONS:
        for key in ("S", "sigma_bar", "R"):
            assert doc["foundations"][f][key] == pytest.approx(
                ref["foundations"][f][key], rel=1e-9, abs=0
            )


@pytest.mark.parametrize("index", range(12))
def test_standard_errors_within_15_percent(
    index: int, published: dict[str, Any], measured: dict[str, dict[str, Any]]
) -> None:
    ref = _variants(published)[index]
    doc = measured[ref["file"]]
    for key in ("S_se", "R_se"):
        assert doc[key] == pytest.approx(ref["exact"][key], rel=0.15)
    for f in FOUNDATIONS:
        for key in ("S_se", "R_se"):
            assert doc["foundations"][f][key] == pytest.approx(ref["foundations"][f][key], rel=0.15)


@pytest.mark.parametrize("index", range(12))
def test_rounded_values_equal_paper_table(
    index: int, published: dict[str, Any], measured: dict[str, dict[str, Any]]
) -> None:
    ref = _variants(published)[index]
    doc = measured[ref["file"]]
    assert round(doc["S"], 2) == ref["paper"]["S"]
    assert round(doc["R"], 2) == ref["paper"]["R"]
    # The paper's per-foundation entries were rounded twice (0.48455 -> 0.485 -> 0.49),
    # so they agree with single rounding to within one unit of the last digit.
    for f in FOUNDATIONS:
        assert abs(doc["foundations"][f]["S"] - ref["foundations"][f]["S_paper"]) <= 0.01
        assert abs(doc["foundations"][f]["R"] - ref["foundations"][f]["R_paper"]) <= 0.1


def test_self_profiles_match_published(
    published: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    refs = published["self_profiles"]
    assert len(refs) == 12
    files = [str(reference_path(r["file"])) for r in refs]
    result = run_cli(capsys, "profile", *files, "--format", "json")
    assert result.status == 0, result.err
    for ref, doc in zip(refs, result.json(), strict=True):
        for f in FOUNDATIONS:
            got, want = doc["foundations"][f], ref["foundations"][f]
            assert got["mean"] == pytest.approx(want["mean"], abs=1e-9)
            assert got["sd"] == pytest.approx(want["sd"], abs=1e-9)
            assert round(got["mean"], 2) == want["paper_mean"]


def _family_files(published: dict[str, Any]) -> dict[str, dict[str, str]]:
    families: dict[str, dict[str, str]] = {}
    for v in _variants(published):
        families.setdefault(v["model"], {})[v["variant"]] = str(reference_path(v["file"]))
    return families


def test_compare_reproduces_headline(
    published: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    docs = {}
    for family, files in _family_files(published).items():
        result = run_cli(
            capsys,
            "compare",
            "--base",
            files["base"],
            "--variant",
            f"secure={files['secure']}",
            "--variant",
            f"insecure={files['insecure']}",
            "--format",
            "json",
            "--repetition-draws",
            "100",
            "--persona-draws",
            "500",
        )
        assert result.status == 0, result.err
        docs[family] = result.json()
    head = published["headline"]

    def mean(label: str, key: str) -> float:
        return float(np.mean([d["variants"][label]["delta_pct"][key] for d in docs.values()]))

    assert mean("insecure", "S") == pytest.approx(head["mean_dS_insecure_pct"], abs=0.1)
    assert mean("insecure", "R") == pytest.approx(head["mean_dR_insecure_pct"], abs=0.1)
    assert mean("insecure", "sigma_bar") == pytest.approx(
        head["mean_dsigma_bar_insecure_pct"], abs=0.1
    )
    worst = max(docs, key=lambda f: docs[f]["variants"]["insecure"]["delta_pct"]["sigma_bar"])
    assert worst == head["max_dsigma_bar_insecure_pct"]["model"]
    assert docs[worst]["variants"]["insecure"]["delta_pct"]["sigma_bar"] == pytest.approx(
        head["max_dsigma_bar_insecure_pct"]["value"], abs=0.1
    )
    excess = float(np.mean([d["excess_pp"]["sigma_bar"] for d in docs.values()]))
    assert excess == pytest.approx(head["mean_excess_dsigma_bar_insecure_minus_secure_pp"], abs=0.1)
    for d in docs.values():
        for label in ("secure", "insecure"):
            se = d["variants"][label]["delta_pct_se"]
            assert all(se[k] > 0 for k in ("S", "sigma_bar", "R"))
    # Every insecure variant except DeepSeek-V3.1 leaves the band; GPT-4o insecure is far outside.
    assert docs["GPT-4o"]["variants"]["insecure"]["outside_band"] is True
    assert docs["GPT-4o"]["variants"]["secure"]["outside_band"] is False


def test_foundation_uniformity_matches_paper(published: dict[str, Any]) -> None:
    from persona_collapse.stats import summarise_families

    from .loading import measure_file

    families = {
        family: {
            label: measure_file(path, persona_draws=2, repetition_draws=0)
            for label, path in files.items()
        }
        for family, files in _family_files(published).items()
    }
    summary = summarise_families(families)
    cv = published["headline"]["per_foundation_cv_population"]
    for metric in ("S", "sigma_bar"):
        for label in ("insecure", "secure"):
            assert round(summary.mean_cv[metric][label], 2) == cv[metric][label]


def test_benchmark_models_and_band(
    published: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    models = published["prior_work_band"]["models"]
    assert len(models) == 15
    files = [str(reference_path(m["file"])) for m in models]
    result = run_cli(
        capsys,
        "metrics",
        *files,
        "--format",
        "json",
        "--persona-draws",
        "200",
        "--repetition-draws",
        "0",
    )
    assert result.status == 0, result.err
    band = published_band()
    assert (band.S_min, band.S_max) == (0.66, 0.83)
    for model, doc in zip(models, result.json(), strict=True):
        assert doc["n_personas"] == model["personas"]
        assert doc["S"] == pytest.approx(model["S"], rel=1e-9)
        assert doc["R"] == pytest.approx(model["R"], rel=1e-9)
        assert band.outside(doc["S"]) is (not model["in_band"])
        assert doc["S_se"] == pytest.approx(model["S_se_persona"], rel=0.3)
    in_band = [
        doc["S"] for model, doc in zip(models, result.json(), strict=True) if model["in_band"]
    ]
    assert len(in_band) == 13
    assert all(0.66 <= s <= 0.83 for s in in_band)

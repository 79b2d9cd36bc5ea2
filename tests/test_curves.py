"""``persona-collapse curves``: S(T) and R(T) from re-weighted T = 1 distributions.

Logprob runs come from the in-process SIMULATED respondent (``sim/base``),
whose :meth:`digit_distribution(temperature=T)` is the direct distribution at
T; the HF check uses a tiny random model's full-vocabulary logits.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from persona_collapse.instruments import load_instrument
from persona_collapse.simulate import SimulatedRespondent
from persona_collapse.stats import reweight_temperature

from .helpers import run_cli

PERSONAS = [
    "A retired schoolteacher who volunteers at the local library.",
    "A competitive rock climber who distrusts institutions.",
    "A devout farmer raising four children in a small rural community.",
    "A young nurse working night shifts in an emergency department.",
    "A jazz musician who grew up moving between three countries.",
]
VALUES = np.arange(6.0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A logprob run and a sampled run of sim/base (seed 0) over PERSONAS: their SOURCEs."""
    from persona_collapse.cli import invoke as main

    tmp = tmp_path_factory.mktemp("curves")
    personas = tmp / "personas.json"
    personas.write_text(json.dumps(PERSONAS), encoding="utf-8")
    store = tmp / "sim.db"
    sources = {}
    for method, extra in (("logprobs", []), ("sample", ["--reps", "2"])):
        out = io.StringIO()
        args = [
            "run",
            "sim/base",
            "--method",
            method,
            "--store",
            str(store),
            "--personas",
            str(personas),
            "--n-personas",
            str(len(PERSONAS)),
            "--quiet",
            *extra,
        ]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert main(args) == 0
        sources[method] = out.getvalue().strip().splitlines()[-1]
    return sources


def _direct(temperature: float) -> np.ndarray:
    """Distributions computed at ``temperature`` directly, (personas, items, 6)."""
    respondent = SimulatedRespondent("base", seed=0)
    items = load_instrument("mfq30").item_ids.tolist()
    return np.array(
        [[respondent.digit_distribution(p, int(i), temperature) for i in items] for p in PERSONAS]
    )


def _expected_sd_brute(probs: np.ndarray, n: int) -> np.ndarray:
    """E[ddof=1 SD of n draws] by enumerating every ordered outcome (6**n of them)."""
    out = np.zeros(probs.shape[:-1])
    for draw in itertools.product(range(6), repeat=n):
        weight = np.prod(probs[..., list(draw)], axis=-1)
        out += weight * np.std(np.array(draw, dtype=float), ddof=1)
    return out


def _curves(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    result = run_cli(capsys, "curves", *args, "--format", "json", "--persona-draws", "50")
    assert result.status == 0, result.err
    return result.json()


def test_curves_match_distributions_computed_at_each_temperature(
    capsys: pytest.CaptureFixture[str], runs: dict[str, str]
) -> None:
    temps = (0.2, 0.5, 1.0, 1.5)
    doc = _curves(
        capsys,
        runs["logprobs"],
        "--temperatures",
        ",".join(map(str, temps)),
        "--expected-reps",
        "0",
    )
    assert len(doc) == 1 and doc[0]["expected_reps"] is None
    points = doc[0]["points"]
    assert [p["temperature"] for p in points] == list(temps)
    for point, t in zip(points, temps, strict=True):
        direct = _direct(t)
        means = direct @ VALUES
        sds = np.sqrt(np.maximum(direct @ VALUES**2 - means**2, 0))
        assert point["S"] == pytest.approx(float(np.std(means, axis=0, ddof=1).mean()), abs=1e-9)
        assert point["sigma_bar"] == pytest.approx(float(sds.mean()), abs=1e-9)
        assert point["R"] == pytest.approx(1 / float(sds.mean()), rel=1e-9)
        assert point["S_se"] > 0 and point["R_se"] > 0
    # Colder answers: personas differ more, repetitions less.
    assert points[0]["S"] > points[-1]["S"] and points[0]["R"] > points[-1]["R"]


def test_expected_reps_matches_brute_force_enumeration(
    capsys: pytest.CaptureFixture[str], runs: dict[str, str]
) -> None:
    doc = _curves(capsys, runs["logprobs"], "--temperatures", "0.4", "--expected-reps", "3")
    point = doc[0]["points"][0]
    brute = _expected_sd_brute(_direct(0.4), 3)
    assert point["sigma_bar"] == pytest.approx(float(brute.mean()), abs=1e-9)
    # The same number as metrics --temperature T --expected-reps N (same seed, same SEs).
    metrics = run_cli(
        capsys,
        "metrics",
        runs["logprobs"],
        "--temperature",
        "0.4",
        "--expected-reps",
        "3",
        "--format",
        "json",
        "--persona-draws",
        "50",
    ).json()[0]
    for key in ("S", "S_se", "sigma_bar", "R", "R_se"):
        assert point[key] == pytest.approx(metrics[key], rel=1e-12)


def test_curves_table_csv_and_figure(
    capsys: pytest.CaptureFixture[str], runs: dict[str, str], tmp_path: Path
) -> None:
    fig = tmp_path / "figs" / "curves.png"
    table = run_cli(capsys, "curves", runs["logprobs"], "--persona-draws", "50", "-o", str(fig))
    assert table.status == 0, table.err
    assert "S(T)" in table.out and "R(T)" in table.out
    for t in ("0.1", "0.3", "0.5", "0.7", "1.5"):  # the default temperatures
        assert f"│ {t} │" in table.out
    assert fig.stat().st_size > 1000 and fig.with_suffix(".pdf").stat().st_size > 1000
    assert "wrote" in table.err

    csv = run_cli(
        capsys,
        "curves",
        runs["logprobs"],
        "--temperatures",
        "0.5,1",
        "--format",
        "csv",
        "--persona-draws",
        "20",
    )
    lines = csv.out.strip().splitlines()
    assert lines[0] == "source,temperature,S,S_se,sigma_bar,sigma_bar_se,R,R_se"
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--temperatures", "0,1"], "positive"),
        (["--temperatures", "hot"], "not a number"),
        (["--expected-reps", "-1"], "--expected-reps"),
    ],
)
def test_bad_options_are_one_line(
    capsys: pytest.CaptureFixture[str], runs: dict[str, str], args: list[str], needle: str
) -> None:
    result = run_cli(capsys, "curves", runs["logprobs"], *args)
    assert result.status == 2 and needle in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_sampled_runs_are_refused(capsys: pytest.CaptureFixture[str], runs: dict[str, str]) -> None:
    result = run_cli(capsys, "curves", runs["sample"])
    assert result.status == 2 and "--method logprobs" in result.err


def test_reweighting_matches_the_tiny_models_logits_over_temperature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """p_T ∝ p_1^(1/T) over the model's full vocabulary equals softmax(logits / T), also
    after summing each digit's spellings. (Re-weighting the already-summed digit masses is
    exact only when each digit's mass sits on one spelling.)"""
    pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
    import torch

    from persona_collapse.backends.local import HFEngine, load_hf
    from persona_collapse.protocol import slot_messages
    from persona_collapse.testing import build_tiny_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_hf(str(build_tiny_model(tmp_path / "tiny")), device="cpu")
    engine = HFEngine(loaded, prefix_cache=False)
    inst = load_instrument("mfq30")
    prompts = [
        engine.encode(slot_messages(inst, i, p, logprobs=True))
        for p in PERSONAS[:2]
        for i in (2, 19)
    ]
    for ids in prompts:
        with torch.inference_mode():
            logits = loaded.model(torch.tensor(ids.tolist())[None]).logits[0, -1].to(torch.float64)
        p1 = torch.softmax(logits, -1).numpy()
        for t in (0.3, 0.7, 1.6):
            direct = torch.softmax(logits / t, -1).numpy()
            reweighted = reweight_temperature(p1, t)
            assert np.abs(reweighted - direct).max() < 1e-12
            by_digit = np.array([reweighted[ids_d].sum() for ids_d in engine.digit_ids[:6]])
            direct_digits = np.array([direct[ids_d].sum() for ids_d in engine.digit_ids[:6]])
            assert np.allclose(
                by_digit / by_digit.sum(), direct_digits / direct_digits.sum(), atol=1e-12
            )


def test_spread_population_is_the_default_and_sample_is_offered(
    capsys: pytest.CaptureFixture[str], runs: dict[str, str]
) -> None:
    """The authors' curves use the population SD of each distribution; ``--spread sample``
    gives the expected SD of n sampled repetitions instead (n = --expected-reps, default 10)."""
    default = _curves(capsys, runs["logprobs"], "--temperatures", "0.5")[0]
    population = _curves(
        capsys, runs["logprobs"], "--temperatures", "0.5", "--spread", "population"
    )[0]
    sample = _curves(capsys, runs["logprobs"], "--temperatures", "0.5", "--spread", "sample")[0]
    ten = _curves(capsys, runs["logprobs"], "--temperatures", "0.5", "--expected-reps", "10")[0]
    assert default["spread"] == population["spread"] == "population"
    assert default["expected_reps"] is None and default["points"] == population["points"]
    direct = _direct(0.5)
    sds = np.sqrt(np.maximum(direct @ VALUES**2 - (direct @ VALUES) ** 2, 0))
    assert default["points"][0]["sigma_bar"] == pytest.approx(float(sds.mean()), abs=1e-9)
    assert sample["spread"] == ten["spread"] == "sample" and sample["expected_reps"] == 10
    assert sample["points"] == ten["points"]
    assert sample["points"][0]["sigma_bar"] < default["points"][0]["sigma_bar"] * 1.2


def test_table_and_figure_say_which_spread_is_shown(
    capsys: pytest.CaptureFixture[str], runs: dict[str, str]
) -> None:
    from persona_collapse.report import curves_figure

    table = run_cli(capsys, "curves", runs["logprobs"], "--persona-draws", "20")
    assert table.status == 0, table.err
    assert "population SD of each distribution" in table.out
    table = run_cli(
        capsys, "curves", runs["logprobs"], "--persona-draws", "20", "--spread", "sample"
    )
    assert "expected SD of 10 sampled repetitions" in table.out
    for spread, words in (("population", "population SD"), ("sample", "expected SD of 10")):
        doc = _curves(capsys, runs["logprobs"], "--temperatures", "0.5,1", "--spread", spread)
        fig = curves_figure(doc)
        texts = [fig.get_suptitle()] + [t.get_text() for t in fig.texts]
        assert any(words in t for t in texts), texts


def test_spread_population_with_repetitions_is_one_line(
    capsys: pytest.CaptureFixture[str], runs: dict[str, str]
) -> None:
    result = run_cli(
        capsys, "curves", runs["logprobs"], "--spread", "population", "--expected-reps", "3"
    )
    assert result.status == 2 and "--spread" in result.err
    assert len(result.err.strip().splitlines()) == 1

"""``plan``: slots, requests, tokens, cost, hours and detectable change, with no network or key."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pytest

from persona_collapse.backends import price_for
from persona_collapse.cli import _plan_command
from persona_collapse.collect import PUBLISHED_REFERENCE, estimate_tokens, plan_run
from persona_collapse.errors import ConfigError
from persona_collapse.instruments import load_instrument
from persona_collapse.protocol import ProtocolSettings, slot_prompt

from .helpers import Result, run_cli

PERSONAS = [
    "A retired schoolteacher who volunteers at the local library.",
    "A competitive rock climber who distrusts institutions.",
    "A devout farmer raising four children in a rural community.",
    "A city council member focused on housing policy.",
    "A young nurse working night shifts in an emergency department.",
    "A jazz musician who grew up moving between three countries.",
]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No cached personas, no key, and any attempt to download or build a client fails."""
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("PERSONA_COLLAPSE_PERSONAHUB", raising=False)
    monkeypatch.delenv("PERSONA_COLLAPSE_PRICES", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("plan must not touch the network")

    import httpx

    import persona_collapse.backends as backends

    monkeypatch.setattr(httpx, "get", no_network)
    monkeypatch.setattr(backends, "create_backend", no_network)


def _plan(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    parser = argparse.ArgumentParser()
    _plan_command.register(parser.add_subparsers())
    args = parser.parse_args(["plan", *argv])
    status = args.handler(args)
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)


@pytest.fixture
def persona_file(tmp_path: Path) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


def test_gpt4o_by_sampling_without_cached_personas(capsys: pytest.CaptureFixture[str]) -> None:
    result = _plan(capsys, "openai/gpt-4o-2024-08-06", "--format", "json")
    doc = result.json()
    assert {"model", "method", "slots", "requests", "prompt_tokens", "completion_tokens"} <= set(
        doc
    )
    assert doc["model"] == "openai/gpt-4o-2024-08-06" and doc["method"] == "sample"
    assert doc["slots"] == 100 * 30 * 10
    assert doc["requests"] == 30_225  # 30,000 x (1 + 0.0075 retries per slot)
    assert doc["completion_tokens"] == doc["requests"]  # one token each, no fallback expected
    assert "published data" in doc["retries_from"]
    assert any("not cached" in n and "100 personas" in n for n in doc["notes"])
    price = price_for("openai/gpt-4o-2024-08-06")
    assert price is not None
    assert doc["cost_usd"] == pytest.approx(
        price.cost(doc["prompt_tokens"], doc["completion_tokens"])
    )
    assert doc["price"]["source"] == price.source
    # the published SEs at the published size: 2 x sqrt(2) x SE / value
    assert doc["mde_pct"]["S"] == pytest.approx(200 * math.sqrt(2) * 0.03 / 0.79)
    assert doc["mde_pct"]["R"] == pytest.approx(200 * math.sqrt(2) * 0.42 / 9.75)
    assert doc["hours"] == pytest.approx(doc["requests"] / doc["rate_req_per_s"] / 3600)


def test_gpt4o_by_logprobs_is_one_request_per_cell(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _plan(
        capsys, "openai/gpt-4o-2024-08-06", "--method", "logprobs", "--format", "json"
    ).json()
    assert doc["slots"] == doc["requests"] == doc["completion_tokens"] == 100 * 30
    sampled = _plan(capsys, "openai/gpt-4o-2024-08-06", "--format", "json").json()
    per_request = doc["prompt_tokens"] / doc["requests"]
    assert per_request > sampled["prompt_tokens"] / sampled["requests"]  # the logprob suffix


def test_precision_scales_with_personas_and_repetitions(capsys: pytest.CaptureFixture[str]) -> None:
    base = _plan(capsys, "openai/gpt-4o", "--format", "json").json()
    wide = _plan(capsys, "openai/gpt-4o", "--n-personas", "400", "--format", "json").json()
    deep = _plan(capsys, "openai/gpt-4o", "--reps", "40", "--format", "json").json()
    assert wide["mde_pct"]["S"] == pytest.approx(base["mde_pct"]["S"] / 2)
    assert wide["mde_pct"]["R"] == pytest.approx(base["mde_pct"]["R"] / 2)
    assert deep["mde_pct"]["S"] == pytest.approx(base["mde_pct"]["S"])  # S: personas only
    assert deep["mde_pct"]["R"] == pytest.approx(base["mde_pct"]["R"] / 2)
    assert wide["mde_pct_one_run"]["S"] == pytest.approx(wide["mde_pct"]["S"] / math.sqrt(2))


def test_tokens_come_from_the_rendered_prompts(
    capsys: pytest.CaptureFixture[str], persona_file: Path
) -> None:
    doc = _plan(
        capsys, "openai/gpt-4o", "--personas", str(persona_file), "--reps", "2", "--format", "json"
    ).json()
    instrument = load_instrument("mfq30")
    per_rep = sum(
        estimate_tokens(slot_prompt(instrument, item, text))
        for text in PERSONAS
        for item in instrument.items
    )
    assert doc["slots"] == 6 * 30 * 2
    assert doc["prompt_tokens"] == math.ceil(round(per_rep * 2 * doc["requests"] / doc["slots"], 6))
    assert doc["tokens_from"].startswith("rendered prompts")
    assert estimate_tokens("x" * 40) == 10 + 7


def test_unknown_price_says_how_to_add_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _plan(capsys, "openai/my-finetune", "--format", "json").json()
    assert doc["cost_usd"] is None and doc["price"] is None
    assert "PERSONA_COLLAPSE_PRICES" in doc["price_note"]
    table = _plan(capsys, "openai/my-finetune")
    assert "unknown" in table.out and "PERSONA_COLLAPSE_PRICES" in table.out

    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"openai/my-finetune": [1.0, 4.0]}), encoding="utf-8")
    monkeypatch.setenv("PERSONA_COLLAPSE_PRICES", str(prices))
    doc = _plan(capsys, "openai/my-finetune", "--format", "json").json()
    assert doc["cost_usd"] == pytest.approx(
        (doc["prompt_tokens"] * 1.0 + doc["completion_tokens"] * 4.0) / 1e6
    )
    assert doc["price"]["source"] == f"price file {prices}"


def test_the_paper_families_have_prices() -> None:
    for model in (
        "openrouter/qwen/qwen3-235b-a22b-2507",
        "openrouter/deepseek/deepseek-chat-v3.1",
    ):
        price = price_for(model)
        assert price is not None and price.input_per_mtok > 0, model
        assert price.source.startswith("genai-prices"), price.source


def test_max_cost_without_a_price_points_to_the_price_file(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    persona_file: Path,
    tmp_path: Path,
) -> None:
    monkeypatch.undo()  # the real run command (it builds a client, sends nothing before the check)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    monkeypatch.delenv("PERSONA_COLLAPSE_PRICES", raising=False)
    result = run_cli(
        capsys,
        "run",
        "openai/my-finetune",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--personas",
        str(persona_file),
        "--store",
        str(tmp_path / "s.db"),
        "--max-cost",
        "1",
        "--quiet",
    )
    assert result.status == 2
    assert "PERSONA_COLLAPSE_PRICES" in result.err and "drop --max-cost" not in result.err


def test_pilot_sets_precision_and_retries(
    capsys: pytest.CaptureFixture[str], persona_file: Path, tmp_path: Path
) -> None:
    store = tmp_path / "pilot.db"
    ran = run_cli(
        capsys,
        "run",
        "sim/base",
        "--personas",
        str(persona_file),
        "--reps",
        "2",
        "--store",
        str(store),
        "--run-id",
        "pilot",
        "--quiet",
    )
    assert ran.status == 0, ran.err
    plan = _plan(capsys, "openai/gpt-4o", "--pilot", f"{store}:pilot", "--format", "json").json()
    assert "pilot" in plan["retries_from"]
    assert "6 personas x 2 repetitions" in plan["precision_from"]
    # the pilot's SEs, scaled from 6 personas x 2 repetitions to 100 x 10
    pilot = _plan(
        capsys,
        "openai/gpt-4o",
        "--pilot",
        f"{store}:pilot",
        "--personas",
        str(persona_file),
        "--reps",
        "2",
        "--format",
        "json",
    ).json()
    assert plan["se"]["S"] == pytest.approx(pilot["se"]["S"] * math.sqrt(6 / 100))
    assert plan["se"]["R"] == pytest.approx(pilot["se"]["R"] * math.sqrt(6 * 2 / (100 * 10)))


def test_pilot_scaling_is_the_documented_rule() -> None:
    instrument = load_instrument("mfq30")
    kwargs: dict[str, Any] = {
        "model": "openai/gpt-4o",
        "method": "sample",
        "protocol": ProtocolSettings(),
        "instrument": instrument,
        "reps": 10,
        "price": None,
    }
    small = plan_run(n_personas=25, **kwargs)
    ref = PUBLISHED_REFERENCE
    assert small.se["S"] == pytest.approx(ref.S_se * 2)
    assert small.se["R"] == pytest.approx(ref.R_se * 2)
    assert small.cost_usd is None
    selfish = plan_run(n_personas=0, self_mode=True, **kwargs)
    assert selfish.slots == 30 * 10 and math.isnan(selfish.mde_pct["S"])


def test_bad_values_are_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="--rate"):
        _plan(capsys, "openai/gpt-4o", "--rate", "0")
    with pytest.raises(ConfigError, match="--reps"):
        _plan(capsys, "openai/gpt-4o", "--reps", "0")
    with pytest.raises(ConfigError, match="family"):
        _plan(capsys, "nosuchfamily/x")


def test_batch_plan_costs_the_batch_price(capsys: pytest.CaptureFixture[str]) -> None:
    direct = _plan(capsys, "openai/gpt-4o-2024-08-06", "--format", "json").json()
    batch = _plan(capsys, "openai/gpt-4o-2024-08-06", "--batch", "--format", "json").json()
    assert batch["batch"] is True and direct["batch"] is False
    assert batch["requests"] == direct["requests"]
    assert batch["cost_usd"] == pytest.approx(direct["cost_usd"] * 0.5)
    assert batch["batch_saving_usd"] == pytest.approx(direct["cost_usd"] * 0.5)
    assert direct["batch_saving_usd"] is None
    assert "batch price" in batch["price_note"] and "batch price" in batch["price"]["source"]
    table = _plan(capsys, "anthropic/claude-3-5-haiku-20241022", "--batch")
    assert table.status == 0 and "cost (batch)" in table.out and "saves $" in table.out


@pytest.mark.parametrize("model", ["sim/base", "hf/tiny"])
def test_batch_plan_refused_without_a_batch_api(
    model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        _plan(capsys, model, "--batch")
    assert "\n" not in caught.value.message and "batch" in caught.value.message


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["anthropic/claude-3-5-haiku-20241022", "--method", "logprobs"],
            "returns no logprobs; use --method sample",
        ),
        (["sim/base", "--batch"], "--batch needs a provider batch API"),
        (["hf/tiny", "--batch"], "--batch needs a provider batch API"),
    ],
)
def test_plan_refuses_what_run_refuses(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = tmp_path / "never.db"
    planned = run_cli(capsys, "plan", *argv)
    ran = run_cli(capsys, "run", *argv, "--store", str(store))
    for result in (planned, ran):
        assert result.status == 2 and needle in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1, result.err
    assert not store.exists()  # refused before anything was loaded or written


def _write_pilot(path: Path, n_personas: int, reps: int, *, failures: bool) -> Path:
    """A published-format pilot: ``n_personas`` x 30 items x ``reps``, with or without failures."""
    header = "persona_id,question_id,run_index,rating" + (",failures" if failures else "")
    rows = [
        f"{p},{q},{r},{(p + q + r) % 6}" + (",1" if failures else "") + ",3,2025-01-01T00:00:00"
        for p in range(n_personas)
        for q in range(1, 31)
        for r in range(1, reps + 1)
    ]
    path.write_bytes(("\r\n".join([header + ",response,collected_at", *rows]) + "\r\n").encode())
    return path


def test_a_pilot_without_failure_counts_plans_the_default_retries(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """No ``failures`` column: the published retry rate (not 0), and the plan says so."""
    bare = _write_pilot(tmp_path / "bare.csv", 3, 2, failures=False)
    counted = _write_pilot(tmp_path / "counted.csv", 3, 2, failures=True)
    plan = _plan(capsys, "openai/gpt-4o", "--pilot", str(bare), "--format", "json").json()
    assert plan["retries_per_slot"] == 0.0075  # the published rate (PUBLISHED_RETRIES_PER_SLOT)
    assert plan["requests"] > plan["slots"]
    assert "no failures column" in plan["retries_from"]
    assert any("no failures column" in note for note in plan["notes"])
    table = _plan(capsys, "openai/gpt-4o", "--pilot", str(bare))
    assert table.status == 0 and "no failures column" in table.out + table.err
    with_counts = _plan(capsys, "openai/gpt-4o", "--pilot", str(counted), "--format", "json")
    assert with_counts.json()["retries_per_slot"] == 1.0  # a pilot's own counts still win


def test_a_one_row_pilot_never_prints_nan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """One persona, one answer: the SEs are undefined; the plan says so and prints no nan."""
    one = tmp_path / "one.csv"
    one.write_bytes(
        b"persona_id,question_id,run_index,rating,failures,response,collected_at\r\n"
        b"0,1,1,3,0,3,2025-01-01T00:00:00\r\n"
    )
    table = _plan(capsys, "openai/gpt-4o", "--pilot", str(one))
    assert table.status == 0, table.err
    assert "nan" not in (table.out + table.err).lower(), table.out
    assert "unknown" in table.out and "1 persona" in table.out + table.err
    doc = _plan(capsys, "openai/gpt-4o", "--pilot", str(one), "--format", "json")
    assert "nan" not in doc.out.lower()
    assert doc.json()["mde_pct"] == {"S": None, "R": None}
    alike = tmp_path / "alike.csv"  # two personas answering alike: S = 0, no relative change
    alike.write_bytes(
        b"persona_id,question_id,run_index,rating,failures,response,collected_at\r\n"
        b"0,1,1,3,0,3,2025-01-01T00:00:00\r\n1,1,1,3,0,3,2025-01-01T00:00:00\r\n"
    )
    table = _plan(capsys, "openai/gpt-4o", "--pilot", str(alike))
    assert table.status == 0 and "nan" not in (table.out + table.err).lower(), table.out
    assert "S unknown" in table.out and "detectable change is unknown" in table.err

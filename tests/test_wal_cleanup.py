"""Every command closes its stores: no ``-wal``/``-shm`` file is left beside a store."""

from __future__ import annotations

from pathlib import Path

import pytest

from persona_collapse.store import ResponseStore

from .helpers import run_cli


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(("-wal", "-shm")))


def test_commands_leave_no_wal_or_shm_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = tmp_path / "s.db"
    personas = tmp_path / "personas.txt"
    personas.write_text("A nurse.\nA farmer.\nA judge.\n", encoding="utf-8")
    small = ("--personas", str(personas), "--reps", "2", "--store", str(store))
    assert run_cli(capsys, "run", "sim/base", *small).status == 0
    assert _leftovers(tmp_path) == []
    run_id = "sim-base_base_persona"
    for argv in (
        ("metrics", str(store)),
        ("metrics", f"{store}:{run_id}", "--format", "json"),
        ("runs", str(store)),
        ("export", f"{store}:{run_id}", "-o", str(tmp_path / "out.csv")),
    ):
        result = run_cli(capsys, *argv)
        assert result.status == 0, (argv, result.err)
        assert _leftovers(tmp_path) == [], argv
    demo = tmp_path / "demo"
    argv = ("demo", "-o", str(demo), "--n-personas", "5", "--reps", "2")
    result = run_cli(capsys, *argv, "--quiet", "--in-process-server")
    assert result.status == 0, result.err
    assert (demo / "demo.db").is_file()
    assert _leftovers(tmp_path) == []


def test_a_reader_keeps_the_files_of_a_store_still_open_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    writer = ResponseStore(path)
    with ResponseStore.for_reading(path) as reader:
        assert reader.list_runs() == []
    assert (tmp_path / "s.db-wal").exists()  # the writer still holds the store
    assert writer.list_runs() == []
    writer.close()
    assert _leftovers(tmp_path) == []
    with ResponseStore.for_reading(path) as reader:
        assert reader.list_runs() == []
    assert _leftovers(tmp_path) == []

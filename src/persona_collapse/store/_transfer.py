"""Moving runs in and out of a store: importing published CSVs, exporting CSV or Parquet."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import DataError, UserError
from ..instruments import load_instrument
from ._csv import read_published_csv, write_published_csv
from ._parquet import write_parquet
from ._records import RunInfo
from ._sqlite import ResponseStore
from ._task_csv import is_task_frame, subjects_of, write_task_csv

EXPORT_SUFFIXES = (".csv", ".parquet")
"""File name endings :func:`export_frame` understands (case-insensitive)."""


def import_csv(
    store: ResponseStore,
    path: str | os.PathLike[str],
    *,
    run_id: str | None = None,
    variant: str = "",
    family: str = "",
    model: str | None = None,
    instrument: str = "mfq30",
) -> RunInfo:
    """Import one published-format CSV as a run (backend ``import``, method ``sample``).

    ``run_id`` defaults to the file stem, ``model`` to ``imported:<stem>``. The
    file is checked against ``instrument`` (scale and item ids). The run
    records the mode, whether the file had a ``failures`` column, the
    resolved ``source`` path and, in ``settings["source_sha256"]``, the digest
    of the file's bytes.

    Importing a file whose bytes are identical to the one already imported
    under that run id is a no-op (it only completes an import that was cut
    short) and returns the stored run; any other existing run with that id is
    refused with a DataError.
    """
    file = Path(path)
    inst = load_instrument(instrument)
    table = read_published_csv(
        file,
        scale_low=inst.scale.low,
        scale_high=inst.scale.high,
        item_ids=inst.item_ids.tolist(),
    )
    rid = run_id if run_id is not None else file.stem
    existing = store.get_run(rid)
    if existing is not None:
        same = existing.backend == "import" and existing.settings.get("source_sha256") == (
            table.sha256
        )
        if not same:
            origin = existing.source or f"model {existing.model}"
            raise DataError(
                f"run {rid!r} already exists in the store {store.path} (from {origin}) "
                f"with other data than {file}; import it under another --run-id"
            )
        store.add_frame(rid, table.frame)
        return existing
    run = store.create_run(
        RunInfo(
            run_id=rid,
            model=model or f"imported:{file.stem}",
            backend="import",
            variant=variant,
            family=family,
            method="sample",
            mode=table.mode,
            instrument=inst.name,
            settings={"source_sha256": table.sha256},
            source=str(file.resolve()),
            has_failures=table.has_failures,
        )
    )
    store.add_frame(rid, table.frame)
    return run


def export_frame(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    mode: str,
    has_failures: bool,
    run: RunInfo | None = None,
) -> None:
    """Write responses to ``path``: published CSV for ``.csv``, Parquet for ``.parquet``.

    CSV keeps the published columns only (``distribution`` and the other
    store extras are dropped); a task run (MMLU, GSM8K: every row's extra
    holds its gold answer) is written as the published task CSV, with the
    MMLU subjects when ``run``'s instrument can be loaded. Parquet keeps
    everything, plus ``run`` when given.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".csv" and is_task_frame(frame):
        write_task_csv(frame, target, _subjects(run))
    elif suffix == ".csv":
        write_published_csv(frame, target, mode=mode, has_failures=has_failures)
    elif suffix == ".parquet":
        write_parquet(frame, target, mode=mode, has_failures=has_failures, run=run)
    else:
        raise DataError(
            f"cannot export to {target}: the file name must end in {' or '.join(EXPORT_SUFFIXES)}"
        )


def _subjects(run: RunInfo | None) -> dict[int, str] | None:
    """A task run's item subjects (MMLU), from its instrument; None when it has none or
    the instrument is not at hand (a user's ``--items`` set)."""
    if run is None:
        return None
    try:
        return subjects_of(load_instrument(run.instrument).items)
    except (UserError, OSError):
        return None


def export_run(store: ResponseStore, run_id: str, path: str | os.PathLike[str]) -> RunInfo:
    """Write one stored run to a CSV or Parquet file (by suffix); returns the run.

    A CSV gets the header the run was imported with (mode, ``failures``), so an
    imported published file exports to the same bytes.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise DataError(
            f"cannot export to {path}: the file name must end in {' or '.join(EXPORT_SUFFIXES)}"
        )
    frame = store.responses_frame(run_id)
    run = store.get_run(run_id)
    assert run is not None
    export_frame(frame, path, mode=run.mode, has_failures=run.has_failures, run=run)
    return run

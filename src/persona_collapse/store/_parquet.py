"""Parquet files of responses: every column of the store, nothing lost.

Written by ``export`` for analysis elsewhere (pandas, polars, R arrow). The
file holds all :data:`RESPONSE_COLUMNS` (``failures`` and token counts as
nullable int64, ``distribution`` as a list of float64, ``extra`` as JSON text)
and, under the schema metadata key ``persona_collapse``, a JSON object with the
``mode``, ``has_failures`` and, when exported from a store, the ``run``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError
from ..instruments import load_instrument
from ..protocol import SELF_PERSONA_ID
from ._csv import PublishedTable
from ._files import read_input_bytes, write_atomically
from ._frame import RESPONSE_COLUMNS, complete_frame
from ._records import MODES, RunInfo
from ._validate import check_responses, row_locator

METADATA_KEY = b"persona_collapse"
FORMAT_VERSION = 1

_SCHEMA = pa.schema(
    [
        ("persona_id", pa.int64()),
        ("question_id", pa.int64()),
        ("run_index", pa.int64()),
        ("rating", pa.int64()),
        ("failures", pa.int64()),
        ("response", pa.string()),
        ("collected_at", pa.string()),
        ("distribution", pa.list_(pa.float64())),
        ("latency_ms", pa.float64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("extra", pa.string()),
    ]
)
_REQUIRED = ("persona_id", "question_id", "run_index", "rating")


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def write_parquet(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    mode: str | None = None,
    has_failures: bool = True,
    run: RunInfo | None = None,
) -> None:
    """Write responses to a Parquet file (replaced atomically), keeping every value.

    ``mode`` defaults to ``self`` when every ``persona_id`` is -1, else
    ``persona``; it and ``has_failures`` are recorded so that a CSV export of
    the file gets the published header back.
    """
    full = complete_frame(frame)
    if mode is None:
        mode = "self" if bool((full["persona_id"] == SELF_PERSONA_ID).all()) else "persona"
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    arrays = [
        pa.array(full["persona_id"].to_numpy(), pa.int64()),
        pa.array(full["question_id"].to_numpy(), pa.int64()),
        pa.array(full["run_index"].to_numpy(), pa.int64()),
        pa.array(full["rating"].to_numpy(), pa.int64()),
        pa.array(full["failures"], pa.int64(), from_pandas=True),
        pa.array(full["response"].to_numpy(dtype=object), pa.string()),
        pa.array(full["collected_at"].to_numpy(dtype=object), pa.string()),
        pa.array(full["distribution"].tolist(), pa.list_(pa.float64())),
        pa.array(full["latency_ms"].to_numpy(), pa.float64(), from_pandas=True),
        pa.array(full["prompt_tokens"], pa.int64(), from_pandas=True),
        pa.array(full["completion_tokens"], pa.int64(), from_pandas=True),
        pa.array([_json_or_none(e) for e in full["extra"].tolist()], pa.string()),
    ]
    meta = {
        "format": FORMAT_VERSION,
        "mode": mode,
        "has_failures": bool(has_failures),
        "run": None if run is None else dataclasses.asdict(run),
    }
    table = pa.Table.from_arrays(arrays, schema=_SCHEMA).replace_schema_metadata(
        {METADATA_KEY: json.dumps(meta, sort_keys=True).encode("utf-8")}
    )

    def write(target: Path) -> None:
        pq.write_table(table, target)

    write_atomically(Path(path), write)


def _metadata(table: pa.Table) -> dict[str, Any]:
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _run_from_metadata(meta: dict[str, Any]) -> RunInfo | None:
    run = meta.get("run")
    if not isinstance(run, dict):
        return None
    known = {f.name for f in dataclasses.fields(RunInfo)}
    try:
        return RunInfo(**{k: v for k, v in run.items() if k in known})
    except TypeError:
        return None


def _parse_extra(value: str | None, file: Path) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise DataError(f"{file} has an extra value that is not JSON; export it again") from exc


def _frame_from_table(table: pa.Table, file: Path) -> pd.DataFrame:
    present = set(table.column_names)
    missing = [c for c in _REQUIRED if c not in present]
    if missing:
        raise DataError(
            f"{file} lacks the column(s) {', '.join(missing)}; a response table needs "
            "persona_id, question_id, run_index and rating (as persona-collapse export writes)"
        )
    columns: dict[str, Any] = {}
    for name in RESPONSE_COLUMNS:
        if name not in present:
            continue
        column = table.column(name)
        if name in _REQUIRED:
            if not pa.types.is_integer(column.type):
                raise DataError(
                    f"{file}: column {name} holds {column.type} values, not integers; "
                    "write it as an integer column (e.g. pandas astype('int64'))"
                )
            if column.null_count:
                raise DataError(f"{file} has empty {name} values; every row needs one")
            columns[name] = column.to_numpy().astype(np.int64)
        elif name in ("distribution", "extra"):
            values = column.to_pylist()
            if name == "extra":
                values = [_parse_extra(v, file) for v in values]
            columns[name] = pd.Series(values, dtype=object)
        else:
            numeric = pa.types.is_integer if name != "latency_ms" else _is_number
            if name not in ("response", "collected_at") and not (
                numeric(column.type) or pa.types.is_null(column.type)
            ):
                raise DataError(
                    f"{file}: column {name} holds {column.type} values, not numbers; "
                    "write it as a numeric column or leave it out"
                )
            columns[name] = column.to_pandas()
    return complete_frame(pd.DataFrame(columns))


def _is_number(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))


def read_parquet(path: str | os.PathLike[str], *, instrument: str | None = None) -> PublishedTable:
    """Read a Parquet file written by :func:`write_parquet` and check it like a CSV.

    Ratings and item ids are checked against ``instrument``, by default the
    one the exported run recorded, else MFQ-30. The frame has all
    :data:`RESPONSE_COLUMNS`; errors name ``row N`` (1-based). Files without
    persona-collapse metadata are accepted when they have the published
    columns (mode from ``persona_id``: all -1 is self).
    """
    file = Path(path)
    data = read_input_bytes(file, what="Parquet file")
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise DataError(
            f"{file} is not a readable Parquet file ({reason}); export it again"
        ) from exc
    frame = _frame_from_table(table, file)
    if frame.empty:
        raise DataError(f"{file} has no rows; it holds no responses")
    meta = _metadata(table)
    run = _run_from_metadata(meta)
    inst = load_instrument(instrument or (run.instrument if run is not None else "mfq30"))
    default_mode = "self" if bool((frame["persona_id"] == SELF_PERSONA_ID).all()) else "persona"
    mode = meta.get("mode") if meta.get("mode") in MODES else default_mode
    check_responses(
        frame,
        file=str(file),
        locate=row_locator,
        mode=str(mode),
        scale_low=inst.scale.low,
        scale_high=inst.scale.high,
        item_ids=inst.item_ids.tolist(),
    )
    return PublishedTable(
        frame=frame,
        mode=str(mode),
        has_failures=bool(meta.get("has_failures", True)),
        path=file,
        sha256=hashlib.sha256(data).hexdigest(),
        run=run,
    )

"""Values between Python and the store's SQL rows: JSON columns, NaN as NULL, run records.

JSON is written with sorted keys; numpy values become plain Python values.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import DataError
from ._records import METHODS, MODES, ResponseRow, RunInfo
from ._run_ids import check_run_id
from ._schema import RUN_TABLE_COLUMNS

__all__ = [
    "canonical_differences",
    "check_run",
    "column_values",
    "json_or_none",
    "loads_or_none",
    "response_params",
    "run_from_row",
    "run_params",
    "to_json",
]


def plain(value: Any) -> Any:
    """JSON fallback for numpy arrays and scalars (``tolist`` gives Python values)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False, default=plain)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} cannot be stored as JSON ({exc}); use plain values") from exc


def json_or_none(value: Any, what: str) -> str | None:
    return None if value is None else to_json(value, what)


def loads_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def none_if_nan(value: Any) -> Any:
    """None for None, NaN and pandas' NA; the value otherwise."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def response_params(run_id: str, row: ResponseRow) -> tuple[Any, ...]:
    where = f"response ({row.persona_id}, {row.item_id}, {row.repetition}) of run {run_id!r}"
    return (
        run_id,
        int(row.persona_id),
        int(row.item_id),
        int(row.repetition),
        int(row.rating),
        None if row.failures is None else int(row.failures),
        row.raw_text,
        json_or_none(row.distribution, f"distribution of {where}"),
        row.collected_at,
        none_if_nan(row.latency_ms),
        None if row.prompt_tokens is None else int(row.prompt_tokens),
        None if row.completion_tokens is None else int(row.completion_tokens),
        json_or_none(row.extra, f"extra of {where}"),
    )


def column_values(series: pd.Series) -> list[Any]:
    """Python values of a column with every missing value as None."""
    values = series.astype(object)
    return values.where(series.notna(), None).tolist()


def run_params(run: RunInfo) -> tuple[Any, ...]:
    values = dataclasses.asdict(run)
    values["settings"] = to_json(run.settings, f"settings of run {run.run_id!r}")
    values["has_failures"] = int(bool(run.has_failures))
    return tuple(values[c] for c in RUN_TABLE_COLUMNS)


def run_from_row(row: Sequence[Any]) -> RunInfo:
    values = dict(zip(RUN_TABLE_COLUMNS, row, strict=True))
    values["settings"] = json.loads(values["settings"])
    values["has_failures"] = bool(values["has_failures"])
    return RunInfo(**values)


def canonical(value: Any) -> Any:
    """``value`` as it reads back from the store (JSON round trip), for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True, default=plain))


def canonical_differences(
    old: dict[str, Any], new: dict[str, Any], names: Sequence[str]
) -> list[str]:
    """The names among ``names`` whose values differ once read back as JSON (``settings``)."""
    return [name for name in names if canonical(old[name]) != canonical(new[name])]


def check_run(run: RunInfo) -> None:
    check_run_id(run.run_id)
    if run.method not in METHODS:
        raise DataError(f"method {run.method!r} is unknown; use one of {', '.join(METHODS)}")
    if run.mode not in MODES:
        raise DataError(f"mode {run.mode!r} is unknown; use one of {', '.join(MODES)}")

"""The response table as a DataFrame: column names, order and dtypes.

Every frame this package hands out uses the published names: ``persona_id``
(0-based, -1 in self mode), ``question_id`` (item id), ``run_index`` (1-based
repetition), ``rating`` (scale value, -1 missing), ``failures`` (nullable
``Int64``), ``response`` (raw text, ``""`` when none), ``collected_at``
(ISO-8601 text as written), then the store's extras: ``distribution`` (list of
probabilities per scale value, or None for sampled data), ``latency_ms``
(float, NaN when unknown), ``prompt_tokens`` / ``completion_tokens``
(nullable ``Int64``) and ``extra`` (dict or None).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KEY_COLUMNS = ("persona_id", "question_id", "run_index")
"""The slot identity: one row per (persona, item, repetition)."""

PERSONA_COLUMNS = (
    "persona_id",
    "question_id",
    "run_index",
    "rating",
    "failures",
    "response",
    "collected_at",
)
"""Header of a published persona-mode CSV, in file order."""

SELF_COLUMNS = PERSONA_COLUMNS[1:]
"""Header of a published self-mode CSV (no persona_id), in file order."""

RESPONSE_COLUMNS = (
    *PERSONA_COLUMNS,
    "distribution",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "extra",
)
"""Columns of :meth:`ResponseStore.responses_frame` and of ``Responses.frame``."""

_INT_COLUMNS = ("persona_id", "question_id", "run_index", "rating")
_NULLABLE_INT_COLUMNS = ("failures", "prompt_tokens", "completion_tokens")
_TEXT_COLUMNS = ("response", "collected_at")
_OBJECT_COLUMNS = ("distribution", "extra")


def published_columns(mode: str, has_failures: bool) -> list[str]:
    """The published CSV header for ``mode`` (persona/self), with or without ``failures``."""
    columns = PERSONA_COLUMNS if mode == "persona" else SELF_COLUMNS
    return [c for c in columns if has_failures or c != "failures"]


def text_series(values: pd.Series) -> pd.Series:
    """``values`` as text, missing values as ``""``."""
    return values.fillna("").astype(str)


def complete_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with exactly :data:`RESPONSE_COLUMNS`, in order, with their dtypes.

    Columns the frame lacks are added empty (``persona_id`` -1, i.e. self
    mode; ``failures`` and token counts ``<NA>``; text ``""``; distribution and
    extra None; latency NaN). Other columns are dropped; the row order and
    index are kept.
    """

    n = len(frame)

    def column(name: str, default: object) -> pd.Series:
        if name in frame.columns:
            return frame[name]
        return pd.Series([default] * n, index=frame.index, dtype=object)

    def absent(values: object) -> pd.Series:
        return pd.Series(values, index=frame.index)

    out = pd.DataFrame(index=frame.index)
    for name in _INT_COLUMNS:
        out[name] = column(name, -1).astype(np.int64)
    for name in _NULLABLE_INT_COLUMNS:
        if name in frame.columns:
            out[name] = frame[name].astype("Int64")
        else:  # built directly: converting n Nones costs more than the rest of the frame
            out[name] = absent(pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool)))
    for name in _TEXT_COLUMNS:
        out[name] = text_series(column(name, ""))
    for name in _OBJECT_COLUMNS:
        values = column(name, None).astype(object)
        out[name] = values.where(values.notna(), None) if name in frame.columns else values
    if "latency_ms" in frame.columns:
        out["latency_ms"] = pd.to_numeric(frame["latency_ms"]).astype(np.float64)
    else:
        out["latency_ms"] = absent(np.full(n, np.nan))
    return out[list(RESPONSE_COLUMNS)]

"""The fast path of reading a published CSV file: well-formed files in one Arrow pass.

:func:`fast_columns` parses the body with Arrow's CSV reader and converts the
integer columns with Arrow's compute kernels, without a Python object per
cell. It accepts only what the checked text path (:mod:`._csv`,
:mod:`._validate`) accepts with the same result: every row has the header's
number of fields, every id and rating is a plain integer (ASCII digits, an
optional ``-``, at most 18 digits, no blanks) and ``failures`` is such an
integer or empty. For anything else it returns None and the caller takes the
text path, which words the error (file, line, value, fix) or accepts the
unusual spelling (``+3``, `` 3 ``). The result is the same frame either way.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..protocol import SELF_PERSONA_ID

_PLAIN_INTEGER = r"^-?[0-9]{1,18}$"
_INTEGER_COLUMNS = ("persona_id", "question_id", "run_index", "rating")
_TEXT_COLUMNS = ("response", "collected_at")


def _read(body: bytes, names: list[str]) -> pa.Table | None:
    """All cells as text (as the text path reads them), or None if Arrow refuses the file."""
    try:
        return pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None


def _integers(column: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.int64]] | None:
    """The column as int64 if every cell is a plain integer, else None."""
    if not pc.all(pc.match_substring_regex(column, _PLAIN_INTEGER)).as_py():
        return None
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(), dtype=np.int64)


def _nullable_integers(column: pa.ChunkedArray) -> pd.arrays.IntegerArray | None:
    """The column as nullable ``Int64`` (empty cells ``<NA>``) if the rest are plain integers."""
    empty = pc.equal(column, "")
    plain = pc.match_substring_regex(column, _PLAIN_INTEGER)
    if not pc.all(pc.or_(empty, plain)).as_py():
        return None
    filled = pc.if_else(empty, "0", column)
    values = np.asarray(pc.cast(filled, pa.int64()).to_numpy(), dtype=np.int64)
    return pd.arrays.IntegerArray(values, np.asarray(empty.to_numpy(), dtype=bool))


def _text(table: pa.Table, name: str) -> pd.Series:
    if name not in table.column_names:
        return pd.Series([""] * table.num_rows, dtype=object).astype(str)
    return pd.Series(table.column(name).to_pandas()).astype(str)


def fast_columns(body: bytes, names: list[str]) -> tuple[pd.DataFrame, str, bool] | None:
    """(frame, mode, has_failures) of a well-formed body, or None for the text path.

    ``body`` is the file's bytes without a byte-order mark, ``names`` its
    header (blank-stripped). The frame has the columns and dtypes of
    :func:`._csv.read_published_csv`'s frame, unchecked (ranges, item ids and
    repeated slots are the caller's :func:`._validate.check_responses`).
    """
    mode = "persona" if "persona_id" in names else "self"
    needed = [c for c in _INTEGER_COLUMNS if mode == "persona" or c != "persona_id"]
    if any(c not in names for c in needed):
        return None
    table = _read(body, names)
    if table is None or table.num_rows == 0:
        return None
    columns: dict[str, Any] = {}
    for name in needed:
        values = _integers(table.column(name))
        if values is None:
            return None
        columns[name] = values
    if mode == "self":
        columns["persona_id"] = np.full(table.num_rows, SELF_PERSONA_ID, dtype=np.int64)
    has_failures = "failures" in names
    if has_failures:
        failures = _nullable_integers(table.column("failures"))
        if failures is None:
            return None
        columns["failures"] = failures
    else:
        n = table.num_rows
        columns["failures"] = pd.arrays.IntegerArray(
            np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
        )
    for name in _TEXT_COLUMNS:
        columns[name] = _text(table, name)
    order = ["persona_id", "question_id", "run_index", "rating", "failures", *_TEXT_COLUMNS]
    return pd.DataFrame({name: columns[name] for name in order}), mode, has_failures

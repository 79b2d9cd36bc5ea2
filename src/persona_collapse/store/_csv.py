"""Reading and writing the published CSV format.

Persona files have the header
``persona_id,question_id,run_index,rating,failures,response,collected_at``;
self files the same without ``persona_id``; ``failures`` may be absent. A tidy
file (``persona_id,question_id,run_index,rating``, or without ``persona_id``
for self mode) is read too: ``response`` and ``collected_at`` are then ``""``. Files
are UTF-8, records end with ``\\r\\n``, and fields are quoted only when they
hold a comma, a quote or a line break (Python's ``csv`` defaults, which the
published files follow), so reading a published file and writing it back gives
the same bytes. Columns not in the header above are ignored.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import DataError
from ..protocol import SELF_PERSONA_ID
from ._csv_fast import fast_columns
from ._files import read_input_bytes, write_atomically
from ._frame import PERSONA_COLUMNS, SELF_COLUMNS, published_columns, text_series
from ._records import MODES, RunInfo
from ._validate import LineLocator, check_responses, parse_text_frame

_BOM = b"\xef\xbb\xbf"
_LINE_END = "\r\n"


@dataclass
class PublishedTable:
    """A response table read from a published CSV (or a Parquet export).

    ``frame`` has ``persona_id`` (int, -1 for self files), ``question_id``,
    ``run_index``, ``rating`` (int), ``failures`` (nullable ``Int64``, all
    ``<NA>`` when the file has no such column), ``response`` and
    ``collected_at`` (text exactly as in the file), in file order. ``sha256``
    is the digest of the file's bytes. ``run`` is the run a Parquet export came
    from, when it recorded one.
    """

    frame: pd.DataFrame
    mode: str
    has_failures: bool
    path: Path
    sha256: str = ""
    run: RunInfo | None = None


TEXT_ONLY_COLUMNS = ("response", "collected_at")
"""Published columns a tidy file may leave out (read as ``""``)."""


def _expected_header() -> str:
    return (
        f"expected the header {','.join(PERSONA_COLUMNS)} (persona file) "
        f"or {','.join(SELF_COLUMNS)} (self file), or the tidy "
        "persona_id,question_id,run_index,rating; failures, response and collected_at "
        "are optional"
    )


def _decode(data: bytes, path: Path) -> str:
    """UTF-8 text of ``data`` (a leading byte-order mark is dropped)."""
    body = data[len(_BOM) :] if data.startswith(_BOM) else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(data) - len(body))
        raise DataError(
            f"{path} is not UTF-8 text (byte 0x{data[offset]:02x} at offset {offset}); "
            "save it as UTF-8"
        ) from exc


def _first_line(data: bytes, path: Path) -> str:
    """The first line of ``data`` as text (the whole file is decoded if that line is not UTF-8)."""
    line = data.split(b"\n", 1)[0]
    try:
        return _decode(line, path)
    except DataError:
        return _decode(data, path)


def _header(text: str, path: Path) -> list[str]:
    """The column names of the first line (blank-stripped); repeated names are refused."""
    first = text.split("\n", 1)[0].rstrip("\r")
    names = [name.strip() for name in next(csv.reader([first]), [])]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"{path} names the column(s) {', '.join(repeated)} more than once; "
            f"keep one of each ({_expected_header()})"
        )
    return names


def _line_of(text: str, row: str) -> int | None:
    """1-based line where ``row`` (the raw text of a record) starts, if it can be found."""
    at = text.find("\n" + row)
    return None if at < 0 else text.count("\n", 0, at + 1) + 1


def _bad_row(text: str, path: Path, row: pacsv.InvalidRow) -> DataError:
    line = _line_of(text, row.text)
    where = f"{path} line {line}" if line is not None else str(path)
    snippet = row.text if len(row.text) <= 60 else row.text[:57] + "..."
    quote = "; it has an unclosed quote" if row.text.count('"') % 2 else ""
    return DataError(
        f"{where}: a row has {row.actual_columns} fields where the header has "
        f"{row.expected_columns} ({snippet!r}){quote}; check the commas and quotes of that row"
    )


def _parse(text: str, path: Path) -> pd.DataFrame:
    """All cells as text, exactly as written (``NA`` and empty cells stay text).

    Uses Arrow's CSV reader, single-threaded so that the first bad row in file
    order is reported: strict about the number of fields per row (pandas
    silently pads short rows) and fast. Quoted fields may span lines.
    """
    names = _header(text, path)
    invalid: list[pacsv.InvalidRow] = []

    def stop(row: pacsv.InvalidRow) -> str:
        invalid.append(row)
        return "error"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=stop),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        if invalid:  # the first row with the wrong number of fields, in file order
            raise _bad_row(text, path, invalid[0]) from exc
        reason = " ".join(str(exc).split())
        raise DataError(
            f"{path} is not a well-formed CSV file ({reason[:200]}); check its commas and quotes"
        ) from exc
    return table.to_pandas()


class _TextPath(Exception):
    """A fast-path check failed; the text path repeats it and words the error."""


def _refuse(position: int) -> str:
    raise _TextPath(position)


def _checked_text(
    text: str,
    file: Path,
    *,
    scale_low: int,
    scale_high: int,
    item_ids: Sequence[int] | None,
) -> tuple[pd.DataFrame, str, bool]:
    """(frame, mode, has_failures) of a file's text, checked cell by cell (DataError on a problem)."""
    table = _parse(text, file)
    mode = "persona" if "persona_id" in table.columns else "self"
    has_failures = "failures" in table.columns
    missing = [c for c in published_columns(mode, has_failures=False) if c not in table.columns]
    if missing and all(c in TEXT_ONLY_COLUMNS for c in missing):
        for column in missing:  # the tidy form: ratings without raw text or timestamps
            table[column] = ""
        missing = []
    if missing:
        raise DataError(f"{file} lacks the column(s) {', '.join(missing)}; {_expected_header()}")
    if table.empty:
        raise DataError(f"{file} has a header but no rows; it holds no responses")

    locate = LineLocator(table)
    typed = parse_text_frame(
        table, file=str(file), locate=locate, scale_low=scale_low, scale_high=scale_high
    )
    check_responses(
        typed,
        file=str(file),
        locate=locate,
        mode=mode,
        scale_low=scale_low,
        scale_high=scale_high,
        item_ids=item_ids,
    )
    n = len(table)
    frame = pd.DataFrame(
        {
            "persona_id": (
                typed["persona_id"].to_numpy(dtype=np.int64)
                if mode == "persona"
                else np.full(n, SELF_PERSONA_ID, dtype=np.int64)
            ),
            "question_id": typed["question_id"].to_numpy(dtype=np.int64),
            "run_index": typed["run_index"].to_numpy(dtype=np.int64),
            "rating": typed["rating"].to_numpy(dtype=np.int64),
            "failures": (
                typed["failures"].array if has_failures else pd.array([pd.NA] * n, dtype="Int64")
            ),
            "response": text_series(table["response"]).to_numpy(),
            "collected_at": text_series(table["collected_at"]).to_numpy(),
        }
    )
    return frame, mode, has_failures


def read_published_csv(
    path: str | os.PathLike[str],
    *,
    scale_low: int = 0,
    scale_high: int = 5,
    item_ids: Sequence[int] | None = None,
) -> PublishedTable:
    """Read and check one published-format CSV file.

    Ratings must be integers on ``scale_low..scale_high`` (inclusive) or -1
    for missing; ids non-negative integers; ``question_id`` one of
    ``item_ids`` (default MFQ-30: 1-30); each slot (persona_id, question_id,
    run_index) at most once (extra repetitions, as in the published Qwen3
    file, are fine). Any problem raises a one-line DataError naming the file
    and line.
    """
    file = Path(path)
    data = read_input_bytes(file, what="CSV file")
    if not data.strip():
        raise DataError(f"{file} is empty; {_expected_header()}")
    body = data[len(_BOM) :] if data.startswith(_BOM) else data
    checks = {"scale_low": scale_low, "scale_high": scale_high}
    # The whole text is decoded only for the text path: Arrow checks the UTF-8 of every
    # cell, and a file it refuses takes the text path, whose decoding words the error.
    fast = fast_columns(body, _header(_first_line(data, file), file))
    if fast is not None:
        try:
            check_responses(
                fast[0], file=str(file), locate=_refuse, mode=fast[1], item_ids=item_ids, **checks
            )
        except _TextPath:  # a check failed: the text path words it, with its line
            fast = None
    if fast is None:
        fast = _checked_text(_decode(data, file), file, item_ids=item_ids, **checks)
    frame, mode, has_failures = fast
    return PublishedTable(
        frame=frame,
        mode=mode,
        has_failures=has_failures,
        path=file,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def published_frame(frame: pd.DataFrame, *, mode: str, has_failures: bool) -> pd.DataFrame:
    """The columns of the published CSV format, in file order, ready to write."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    columns = published_columns(mode, has_failures)
    absent = [c for c in columns if c not in frame.columns and c != "failures"]
    if absent:
        raise DataError(
            f"the responses lack the column(s) {', '.join(absent)} needed for the published format"
        )
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        if column in ("response", "collected_at"):
            out[column] = text_series(frame[column])
        elif column == "failures":
            values = frame[column] if column in frame else pd.Series(pd.NA, index=frame.index)
            out[column] = values.astype("Int64")
        else:
            out[column] = frame[column].astype(np.int64)
    return out


def write_published_csv(
    frame: pd.DataFrame, path: str | os.PathLike[str], *, mode: str, has_failures: bool
) -> None:
    """Write ``frame`` as a published-format CSV (UTF-8, ``\\r\\n``, minimal quoting).

    ``mode`` picks the header (``self`` drops ``persona_id``); ``has_failures``
    whether ``failures`` is written (missing values as empty cells). Rows are
    written in frame order. The file is replaced atomically.
    """
    table = published_frame(frame, mode=mode, has_failures=has_failures)

    def write(target: Path) -> None:
        table.to_csv(target, index=False, lineterminator=_LINE_END, encoding="utf-8")

    write_atomically(Path(path), write)

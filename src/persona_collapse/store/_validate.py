"""Checking response tables against the published schema and an instrument (vectorised).

Every check finds the first offending row with numpy and raises a one-line
:class:`~persona_collapse.errors.DataError` naming the file, the place (``line
N`` of a CSV file, counting the header as line 1 and following quoted line
breaks; ``row N`` of other tables, 1-based), the value and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import DataError
from ._frame import KEY_COLUMNS, text_series

Locator = Callable[[int], str]
"""Maps a 0-based row position to where a user finds it (``"line 12"``)."""

INTEGER_PATTERN = r"[+-]?\d{1,18}"
"""A whole number as stored text: optional sign, 1-18 digits (fits int64); matched in full."""

MFQ30_ITEM_IDS = tuple(range(1, 31))
"""Item ids of MFQ-30, the default instrument."""


def row_locator(position: int) -> str:
    """``row N`` (1-based data row), for tables that are not line-oriented files."""
    return f"row {position + 1}"


class LineLocator:
    """``line N`` of a CSV file whose data rows were parsed into ``text``.

    Line 1 is the header; a record starts one line after the previous record
    plus the line breaks inside its quoted fields. Computed on first use only
    (errors are rare; the count is vectorised).
    """

    def __init__(self, text: pd.DataFrame) -> None:
        self._text = text
        self._starts: npt.NDArray[np.int64] | None = None

    def __call__(self, position: int) -> str:
        if self._starts is None:
            breaks = np.zeros(len(self._text), dtype=np.int64)
            for column in self._text.columns:
                counts = text_series(self._text[column]).str.count("\n")
                breaks += counts.to_numpy(dtype=np.int64)
            before = np.concatenate(([0], np.cumsum(breaks)[:-1]))
            self._starts = 2 + np.arange(len(self._text), dtype=np.int64) + before
        return f"line {int(self._starts[position])}"


def _first(mask: npt.NDArray[np.bool_]) -> int | None:
    """Position of the first True, or None."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _describe_scale(low: int, high: int) -> str:
    return f"whole numbers {low}-{high}, or -1 for a missing answer"


def _describe_ids(item_ids: Sequence[int]) -> str:
    ids = sorted(int(i) for i in item_ids)
    if ids and ids == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}-{ids[-1]}"
    return ", ".join(str(i) for i in ids)


def parse_integers(
    text: pd.Series,
    *,
    column: str,
    file: str,
    locate: Locator,
    nullable: bool = False,
    rule: str,
) -> pd.Series:
    """Integers from a text column (surrounding blanks allowed).

    Returns ``int64``, or nullable ``Int64`` with empty cells as ``<NA>`` when
    ``nullable``. ``rule`` completes the error message ("ratings must be ...").
    """
    stripped = text_series(text).str.strip()
    empty = (stripped == "").to_numpy(dtype=bool)
    ok = stripped.str.fullmatch(INTEGER_PATTERN).to_numpy(dtype=bool)
    if nullable:
        ok = ok | empty
    bad = _first(~ok)
    if bad is not None:
        value = text.iloc[bad]
        raise DataError(f"{file} {locate(bad)}: {column} {value!r} is not an integer; {rule}")
    if nullable:
        return stripped.mask(empty).astype("Int64")
    return stripped.astype(np.int64)


def parse_text_frame(
    text: pd.DataFrame, *, file: str, locate: Locator, scale_low: int, scale_high: int
) -> pd.DataFrame:
    """Typed columns from the text of a published CSV (any subset of its columns).

    ``scale_low``/``scale_high`` only word the message for a non-integer rating;
    the range itself is checked by :func:`check_responses`.
    """
    ids = "ids must be whole numbers >= 0; fix or remove that row"
    rules = {column: (ids, False) for column in KEY_COLUMNS}  # column -> (rule, nullable)
    rules["rating"] = (f"ratings must be {_describe_scale(scale_low, scale_high)}", False)
    rules["failures"] = ("failures must be a whole number >= 0, or empty if unknown", True)
    out = pd.DataFrame(index=text.index)
    for column, (rule, nullable) in rules.items():
        if column in text:
            out[column] = parse_integers(
                text[column], column=column, file=file, locate=locate, nullable=nullable, rule=rule
            )
    return out


def check_responses(
    frame: pd.DataFrame,
    *,
    file: str,
    locate: Locator,
    mode: str,
    scale_low: int,
    scale_high: int,
    item_ids: Sequence[int] | None,
) -> None:
    """Check ids, ratings, failures and slot uniqueness of a typed response frame.

    ``frame`` has integer ``persona_id`` (ignored in self mode), ``question_id``,
    ``run_index``, ``rating`` and optionally nullable ``failures``. Ratings must
    be on ``scale_low..scale_high`` or -1; item ids in ``item_ids`` (default
    MFQ-30: 1-30); no slot may appear twice.
    """
    keys = list(KEY_COLUMNS) if mode == "persona" else list(KEY_COLUMNS[1:])
    for column in keys:
        values = frame[column].to_numpy(dtype=np.int64)
        bad = _first(values < 0)
        if bad is not None:
            raise DataError(
                f"{file} {locate(bad)}: {column} {int(values[bad])} is negative; "
                "ids must be whole numbers >= 0; fix or remove that row"
            )

    ratings = frame["rating"].to_numpy(dtype=np.int64)
    outside = ((ratings < scale_low) | (ratings > scale_high)) & (ratings != -1)
    bad = _first(outside)
    if bad is not None:
        raise DataError(
            f"{file} {locate(bad)}: rating {int(ratings[bad])} is outside the scale; "
            f"allowed are {_describe_scale(scale_low, scale_high)} "
            "(choose the matching --instrument if the file uses another scale)"
        )

    if "failures" in frame:
        failures = frame["failures"].astype("Int64")
        bad = _first(failures.lt(0).fillna(False).to_numpy(dtype=bool))
        if bad is not None:
            raise DataError(
                f"{file} {locate(bad)}: failures {int(failures.iloc[bad])} is negative; "
                "failures must be a whole number >= 0, or empty if unknown"
            )

    allowed = np.asarray(MFQ30_ITEM_IDS if item_ids is None else item_ids, dtype=np.int64)
    items = frame["question_id"].to_numpy(dtype=np.int64)
    bad = _first(~np.isin(items, allowed))
    if bad is not None:
        raise DataError(
            f"{file} {locate(bad)}: question_id {int(items[bad])} is not an item of the "
            f"instrument (valid ids: {_describe_ids(allowed.tolist())}); "
            "fix the row or choose the matching --instrument"
        )

    duplicated = frame.duplicated(subset=keys, keep="first").to_numpy(dtype=bool)
    bad = _first(duplicated)
    if bad is not None:
        slot = frame.iloc[bad][keys]
        same = np.all(frame[keys].to_numpy(dtype=np.int64) == slot.to_numpy(dtype=np.int64), axis=1)
        original = _first(same)
        assert original is not None
        described = ", ".join(f"{k}={int(slot[k])}" for k in keys)
        hint = "" if mode == "persona" else " (a persona file needs its persona_id column)"
        raise DataError(
            f"{file} {locate(bad)}: duplicate slot {described} (first at {locate(original)}); "
            f"each slot may appear once{hint}: remove or renumber the repeat"
        )

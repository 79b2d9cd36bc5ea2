"""A task run (MMLU, GSM8K) as the published task CSV of the capability control.

Header: ``item_id,run_index,answer,gold,correct,format_valid,failures,response,
collected_at`` plus ``subject`` when the items have subjects (MMLU). From a
stored task row: ``answer`` and ``gold`` come from its ``extra`` (``""`` for
no parsed answer), ``correct`` is 1 when the rating (the score) is 1,
``format_valid`` 1 when an answer parsed, ``failures`` the stored count (1
for a format failure). UTF-8, ``\\r\\n`` line ends, minimal quoting, like the
questionnaire CSVs; the file is replaced atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..instruments import Item
from ._files import write_atomically
from ._frame import text_series

TASK_COLUMNS = (
    "item_id",
    "run_index",
    "answer",
    "gold",
    "correct",
    "format_valid",
    "failures",
    "response",
    "collected_at",
)
"""Header of a published task CSV, in file order (``subject`` follows for MMLU)."""

_LINE_END = "\r\n"


def is_task_frame(frame: pd.DataFrame) -> bool:
    """Whether every row of ``frame`` is a task row (its ``extra`` holds ``gold``)."""
    if frame.empty or "extra" not in frame.columns:
        return False
    return all(isinstance(e, Mapping) and "gold" in e for e in frame["extra"])


def _extra_text(extras: pd.Series, key: str) -> pd.Series:
    values = [e.get(key) if isinstance(e, Mapping) else None for e in extras]
    return text_series(pd.Series(values, index=extras.index, dtype=object))


def task_frame(frame: pd.DataFrame, subjects: Mapping[int, str] | None = None) -> pd.DataFrame:
    """The published task columns of ``frame`` (a store frame of a task run), ready to write.

    ``subjects``: item id -> subject (MMLU); adds the ``subject`` column.
    """
    answer = _extra_text(frame["extra"], "answer")
    rating = frame["rating"].to_numpy(dtype=np.int64)
    out = pd.DataFrame(index=frame.index)
    out["item_id"] = frame["question_id"].astype(np.int64)
    out["run_index"] = frame["run_index"].astype(np.int64)
    out["answer"] = answer
    out["gold"] = _extra_text(frame["extra"], "gold")
    out["correct"] = (rating == 1).astype(np.int64)
    out["format_valid"] = (answer != "").to_numpy(dtype=np.int64)
    out["failures"] = frame["failures"].astype("Int64")
    out["response"] = text_series(frame["response"])
    out["collected_at"] = text_series(frame["collected_at"])
    if subjects:
        ids = out["item_id"].to_numpy()
        out["subject"] = [subjects.get(int(i), "") for i in ids]
    return out


def write_task_csv(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    subjects: Mapping[int, str] | None = None,
) -> None:
    """Write a task run's ``frame`` as a published task CSV (see the module doc)."""
    table = task_frame(frame, subjects)

    def write(target: Path) -> None:
        table.to_csv(target, index=False, lineterminator=_LINE_END, encoding="utf-8")

    write_atomically(Path(path), write)


def subjects_of(items: Iterable[Item]) -> dict[int, str] | None:
    """Item id -> subject of a task instrument's items; None when they have none (``all``)."""
    subjects = {int(it.id): str(it.subscale) for it in items}
    return None if set(subjects.values()) <= {"all"} else subjects

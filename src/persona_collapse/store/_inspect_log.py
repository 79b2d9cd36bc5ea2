"""Reading an inspect_ai ``.eval`` log of ``persona_collapse/mfq_personas`` as a response table.

inspect_ai is imported only when such a log is read (the ``inspect`` extra).
Each sample-epoch becomes one row with the published columns: ``persona_id``
and ``question_id`` from the sample's metadata, ``run_index`` = the epoch,
``rating`` = the ``rating`` score (-1: missing; a sample that errored and was
never scored is missing too), ``failures`` and ``response`` from the score.

The reader is bounded and strict: every zip member's declared size is checked
against :data:`EVAL_MEMBER_MAX_BYTES` before anything is parsed, and ids,
ratings and failure counts must be whole numbers (a rating on the instrument's
scale, or -1). A bad log is a one-line :class:`~persona_collapse.errors.DataError`
naming the sample and the value.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError
from ..instruments import load_instrument
from ..protocol import MISSING_RATING
from ._validate import INTEGER_PATTERN, _describe_scale
from ._zip_bounds import check_zip_members

EVAL_SUFFIX = ".eval"
EVAL_MEMBER_MAX_BYTES = 256 * 2**20
"""Largest uncompressed size, in bytes, of one member of a ``.eval`` log (256 MiB).

A sample of ``persona_collapse/mfq_personas`` takes about 10 kB and the
summaries about 1 kB per sample, so real logs stay far below; the bound stops a
damaged or hostile log (a few MB zipped, gigabytes unpacked) from filling
memory. Each member's declared size is checked before anything is parsed, and
its real size is counted while streaming (about 2 MiB of memory); inspect then
reads the members with :mod:`zipfile`, which stops at the declared sizes.
"""
_SCORER = "rating"
_INTEGER = re.compile(INTEGER_PATTERN)


def _read(path: Path) -> Any:
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise DataError(
            f"{path} is an inspect_ai log; reading it needs inspect_ai: "
            "pip install 'persona-collapse[inspect]'"
        ) from None
    check_zip_members(path, bound=EVAL_MEMBER_MAX_BYTES, what="inspect log")
    try:
        # A stream, not the path: inspect then reads the members with zipfile, which
        # stops at each member's declared (now checked) size.
        with path.open("rb") as handle:
            return read_eval_log(handle, format="eval")
    except Exception as exc:  # a damaged or foreign file: one line, no traceback
        first = str(exc).strip().splitlines()
        raise DataError(
            f"cannot read inspect log {path}: {first[0] if first else type(exc).__name__}"
        ) from None


def _whole(value: Any) -> int | None:
    """``value`` as an int if it is a whole number (an int, an integral float or integer
    text), else None. Booleans are not numbers here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    return None


def _row(path: Path, sample: Any, low: int, high: int) -> dict[str, Any]:
    """One response row of ``sample``; a one-line DataError names any value that is not one."""
    where = f"inspect log {path}: sample {sample.id} (epoch {sample.epoch})"
    meta = sample.metadata or {}
    ids = {}
    for key in ("persona_id", "question_id"):
        ids[key] = _whole(meta[key])
        if ids[key] is None:
            raise DataError(
                f"{where} has {key} {meta[key]!r}; ids must be whole numbers: "
                "only logs of persona_collapse/mfq_personas are response tables"
            )
    score = (sample.scores or {}).get(_SCORER)
    value = None if score is None else score.value
    rating = MISSING_RATING if score is None else _whole(value)
    if rating is None or (rating != MISSING_RATING and not low <= rating <= high):
        raise DataError(
            f"{where} has rating score {value!r}; ratings must be "
            f"{_describe_scale(low, high)} (choose the matching --instrument if the log uses "
            "another scale)"
        )
    info = {} if score is None or score.metadata is None else score.metadata
    failures = _whole(info.get("failures", 0))
    if failures is None or failures < 0:
        raise DataError(
            f"{where} has failures {info.get('failures')!r}; failures must be a whole number >= 0"
        )
    return {
        **ids,
        "run_index": int(sample.epoch),
        "rating": rating,
        "failures": failures,
        "response": "" if score is None or score.answer is None else str(score.answer),
        "collected_at": "" if not sample.completed_at else str(sample.completed_at),
    }


def eval_log_frame(
    path: Path, instrument: str | None = None
) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    """``(frame, instrument, task_metadata)`` of a ``persona_collapse/mfq_personas`` log.

    Ratings are checked against ``instrument``'s scale (default: the instrument the
    samples record, else ``mfq30``); the returned instrument is the one recorded.
    """
    log = _read(path)
    task = getattr(log.eval, "task", "")
    samples = log.samples or []
    if not samples:
        raise DataError(f"inspect log {path} holds no samples (status {log.status})")
    recorded = "mfq30"
    for sample in samples:
        meta = sample.metadata or {}
        if "persona_id" not in meta or "question_id" not in meta:
            raise DataError(
                f"inspect log {path} (task {task}) has samples without persona_id/question_id; "
                "only logs of persona_collapse/mfq_personas are response tables"
            )
        recorded = str(meta.get("instrument", recorded))
    scale = load_instrument(instrument or recorded).scale
    rows = [_row(path, sample, scale.low, scale.high) for sample in samples]
    frame = pd.DataFrame(rows)
    frame["failures"] = frame["failures"].astype("Int64")
    settings = dict((log.eval.metadata or {}).get("persona_collapse", {}))
    settings["inspect_task"] = task
    settings["inspect_model"] = getattr(log.eval, "model", "")
    return frame.sort_values(["persona_id", "question_id", "run_index"]), recorded, settings

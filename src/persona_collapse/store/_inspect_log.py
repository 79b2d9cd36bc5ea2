"""Reading an inspect_ai ``.eval`` log of ``persona_collapse/mfq_personas`` as a response table.

inspect_ai is imported only when such a log is read (the ``inspect`` extra).
Each sample-epoch becomes one row with the published columns: ``persona_id``
and ``question_id`` from the sample's metadata, ``run_index`` = the epoch,
``rating`` = the ``rating`` score (-1: missing; a sample that errored and was
never scored is missing too), ``failures`` and ``response`` from the score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError
from ..protocol import MISSING_RATING

EVAL_SUFFIX = ".eval"
_SCORER = "rating"


def _read(path: Path) -> Any:
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise DataError(
            f"{path} is an inspect_ai log; reading it needs inspect_ai: "
            "pip install 'persona-collapse[inspect]'"
        ) from None
    try:
        return read_eval_log(str(path))
    except Exception as exc:  # a damaged or foreign file: one line, no traceback
        raise DataError(f"cannot read inspect log {path}: {exc}") from None


def eval_log_frame(path: Path) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    """``(frame, instrument, task_metadata)`` of a ``persona_collapse/mfq_personas`` log."""
    log = _read(path)
    task = getattr(log.eval, "task", "")
    samples = log.samples or []
    if not samples:
        raise DataError(f"inspect log {path} holds no samples (status {log.status})")
    rows = []
    instrument = "mfq30"
    for sample in samples:
        meta = sample.metadata or {}
        if "persona_id" not in meta or "question_id" not in meta:
            raise DataError(
                f"inspect log {path} (task {task}) has samples without persona_id/question_id; "
                "only logs of persona_collapse/mfq_personas are response tables"
            )
        instrument = str(meta.get("instrument", instrument))
        score = (sample.scores or {}).get(_SCORER)
        rating = MISSING_RATING if score is None else int(score.as_int())
        info = {} if score is None or score.metadata is None else score.metadata
        rows.append(
            {
                "persona_id": int(meta["persona_id"]),
                "question_id": int(meta["question_id"]),
                "run_index": int(sample.epoch),
                "rating": rating,
                "failures": int(info.get("failures", 0)),
                "response": "" if score is None or score.answer is None else str(score.answer),
                "collected_at": "" if not sample.completed_at else str(sample.completed_at),
            }
        )
    frame = pd.DataFrame(rows)
    frame["failures"] = frame["failures"].astype("Int64")
    settings = dict((log.eval.metadata or {}).get("persona_collapse", {}))
    settings["inspect_task"] = task
    settings["inspect_model"] = getattr(log.eval, "model", "")
    return frame.sort_values(["persona_id", "question_id", "run_index"]), instrument, settings

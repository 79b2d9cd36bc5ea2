"""Where every response set of a report came from, and how often answering failed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._downloads import sha256_file
from ..store import MISSING_RATING, Responses, RunInfo

_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class SourceRecord:
    """Provenance and failure statistics of one response set.

    Store runs carry their run record (model, backend, settings, hashes, tool
    version, date); published CSV files carry their file name and sha256.
    ``mean_failures`` is NaN when the source records no failure counts;
    ``missing_share`` is the fraction of rows with rating -1.
    """

    family: str
    variant: str
    role: str
    label: str
    source: str
    model: str
    backend: str
    method: str
    mode: str
    settings: str
    persona_set_hash: str
    protocol_hash: str
    tool_version: str
    created: str
    file_name: str
    sha256: str
    rows: int
    mean_failures: float
    missing_share: float
    simulated: bool


def run_is_simulated(run: RunInfo | None) -> bool:
    """Whether a run's answers are SIMULATED: backend ``sim`` or settings saying so."""
    if run is None:
        return False
    settings = run.settings or {}
    return (
        run.backend.strip().lower() == "sim"
        or run.model.strip().lower().startswith("sim/")
        or bool(settings.get("simulated"))
        or str(settings.get("data", "")).upper() == "SIMULATED"
    )


def failure_stats(frame: pd.DataFrame) -> tuple[float, float]:
    """``(mean failures per row, share of rows with rating -1)``; NaN where unknown."""
    if frame.empty:
        return float("nan"), float("nan")
    failures = pd.to_numeric(frame["failures"], errors="coerce").to_numpy(dtype=np.float64)
    mean_failures = float(np.nanmean(failures)) if np.isfinite(failures).any() else float("nan")
    ratings = frame["rating"].to_numpy(dtype=np.float64)
    return mean_failures, float(np.mean(ratings == MISSING_RATING))


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


def _file_part(spec: str) -> Path | None:
    path = Path(spec)
    if path.is_file():
        return path
    store, sep, _ = spec.rpartition(":")
    if sep and Path(store).is_file():
        return Path(store)
    return None


def source_record(
    responses: Responses, *, family: str, variant: str, role: str, spec: str, simulated: bool
) -> SourceRecord:
    """Provenance of one loaded SOURCE (``spec`` as resolved in the study)."""
    run = responses.run
    file = _file_part(spec)
    mean_failures, missing = failure_stats(responses.frame)
    return SourceRecord(
        family=family,
        variant=variant,
        role=role,
        label=responses.label,
        source=spec,
        model=run.model if run else "",
        backend=run.backend if run else "",
        method=responses.method,
        mode=responses.mode,
        settings=json.dumps(run.settings, sort_keys=True) if run else "",
        persona_set_hash=run.persona_set_hash if run else "",
        protocol_hash=run.protocol_hash if run else "",
        tool_version=run.tool_version if run else "",
        created=run.created if run else "",
        file_name=file.name if file else "",
        sha256=sha256_file(file) if file is not None and not _is_sqlite(file) else "",
        rows=len(responses.frame),
        mean_failures=mean_failures,
        missing_share=missing,
        simulated=simulated or run_is_simulated(run),
    )

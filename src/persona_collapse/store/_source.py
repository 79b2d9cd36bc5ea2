"""Resolving a SOURCE argument to response tables.

A SOURCE is a published-format CSV file (or a tidy one:
``persona_id,question_id,run_index,rating``), a folder of them (one table per
``*.csv``, by name), a Parquet file written by ``export``, a store file (one
table per run, opened read-only) or ``STORE.db:RUN_ID`` (split on the last
``:``), or an inspect_ai ``.eval`` log of ``persona_collapse/mfq_personas`` (a
folder without CSV files is read for ``*.eval`` logs). In Python, :func:`responses_from_frame` makes a table of a DataFrame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..instruments import elicitation_of, load_instrument
from ._csv import PublishedTable, read_published_csv
from ._frame import complete_frame
from ._inspect_log import EVAL_SUFFIX, eval_log_frame
from ._parquet import read_parquet
from ._records import RunInfo
from ._schema import SQLITE_MAGIC
from ._sqlite import ResponseStore
from ._validate import check_responses, row_locator

_PARQUET_MAGIC = b"PAR1"
_STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_FORMS = (
    "a published-format CSV, a folder of them, a Parquet export, STORE.db, STORE.db:RUN_ID "
    "or an inspect .eval log"
)


@dataclass
class Responses:
    """One response table ready for the estimators.

    ``frame`` has all :data:`RESPONSE_COLUMNS` (``distribution`` None for
    sampled data); ``label`` is the short name for tables (file stem, or
    ``store.db:run``); ``run`` is the stored run, when there is one.
    """

    frame: pd.DataFrame
    label: str
    mode: str
    method: str
    instrument: str
    run: RunInfo | None
    has_failures: bool

    @property
    def simulated(self) -> bool:
        """Whether the data came from a simulated model (``sim/``), by its run record.

        A published CSV carries no record: its data count as real.
        """
        if self.run is None:
            return False
        return bool(self.run.settings.get("simulated")) or self.run.backend == "sim"


def _kind(path: Path) -> str:
    """``store``, ``parquet`` or ``csv``, by the file's first bytes, then its suffix.

    A ``.db``/``.sqlite`` file is always treated as a store, so that a damaged
    one is reported as such rather than as a malformed CSV.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror}); check its permissions") from exc
    suffix = path.suffix.lower()
    if head == SQLITE_MAGIC or suffix in _STORE_SUFFIXES:
        return "store"
    if head.startswith(_PARQUET_MAGIC) or suffix == ".parquet":
        return "parquet"
    return "csv"


def _method(table: PublishedTable) -> str:
    if table.run is not None:
        return table.run.method
    return "logprobs" if bool(table.frame["distribution"].notna().any()) else "sample"


def _from_file(path: Path, instrument: str | None) -> Responses:
    if _kind(path) == "csv":
        inst = load_instrument(instrument or "mfq30")
        table = read_published_csv(
            path,
            scale_low=inst.scale.low,
            scale_high=inst.scale.high,
            item_ids=inst.item_ids.tolist(),
        )
        return Responses(
            frame=complete_frame(table.frame),
            label=path.stem,
            mode=table.mode,
            method="sample",
            instrument=inst.name,
            run=None,
            has_failures=table.has_failures,
        )
    table = read_parquet(path, instrument=instrument)
    return Responses(
        frame=table.frame,
        label=path.stem,
        mode=table.mode,
        method=_method(table),
        instrument=instrument or (table.run.instrument if table.run else "mfq30"),
        run=table.run,
        has_failures=table.has_failures,
    )


def _from_eval(path: Path, instrument: str | None) -> Responses:
    frame, recorded, _settings = eval_log_frame(path, instrument)
    return responses_from_frame(
        frame, label=path.stem, instrument=instrument or recorded, method="sample"
    )


def is_task_run(run: RunInfo) -> bool:
    """Whether a stored run is a task run (capability control).

    Its settings record an item set's sha256 (every task run records one, so a user's
    ``--items`` set, stored under its own name, counts too), or its instrument is a task by
    its definition (:func:`~persona_collapse.instruments.elicitation_of`: a built-in task's
    from its declaration, so no item file is read, hashed or downloaded to classify a run).
    """
    if run.settings.get("items_sha256"):
        return True
    how = elicitation_of(run.instrument)
    return how is not None and how.kind == "task"


def task_run_ids(path: Path) -> list[str]:
    """The task runs (capability control) of the store at ``path``, which questionnaire
    readers leave out of a whole store (``metrics STORE.db:RUN_ID`` reads one)."""
    with ResponseStore.for_reading(path) as store:
        return [run.run_id for run in store.list_runs() if is_task_run(run)]


def _from_store(path: Path, run_id: str | None) -> list[Responses]:
    if path.stat().st_size == 0:
        raise DataError(f"store {path} is empty; run or import into it first")
    with ResponseStore.for_reading(path) as store:
        if run_id is None:
            every = store.list_runs()
            if not every:
                raise DataError(f"store {path} holds no runs yet; run or import into it first")
            # Beside questionnaire runs, task runs (capability control) are not questionnaire
            # data: left out here (the task readers take them; see task_run_ids).
            runs = [run for run in every if not is_task_run(run)] or every
        else:
            runs = [store.require_run(run_id)]
        return [
            Responses(
                frame=store.responses_frame(run.run_id),
                label=f"{path.name}:{run.run_id}",
                mode=run.mode,
                method=run.method,
                instrument=run.instrument,
                run=run,
                has_failures=run.has_failures,
            )
            for run in runs
        ]


def responses_from_frame(
    frame: pd.DataFrame,
    *,
    label: str = "frame",
    instrument: str = "mfq30",
    method: str | None = None,
) -> Responses:
    """A response table from a pandas DataFrame, checked like a CSV file.

    The frame needs ``question_id``, ``run_index`` and ``rating`` (integers)
    and, for persona mode, ``persona_id``; any other column of
    :data:`RESPONSE_COLUMNS` is kept (``distribution`` lists make it a
    logprob table). Ratings and item ids are checked against ``instrument``;
    problems raise a one-line DataError naming ``label`` and the row.
    """
    needed = ["question_id", "run_index", "rating"]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise DataError(
            f"{label} lacks the column(s) {', '.join(absent)}; a response frame needs "
            "persona_id, question_id, run_index and rating"
        )
    if frame.empty:
        raise DataError(f"{label} has no rows; it holds no responses")
    keys = [c for c in ("persona_id", *needed) if c in frame.columns]
    for column in keys:
        values = frame[column]
        if not pd.api.types.is_integer_dtype(values.dtype) or bool(values.isna().any()):
            raise DataError(
                f"{label}: column {column} holds {values.dtype} values, not whole numbers; "
                "convert it with astype('int64')"
            )
    mode = "persona" if "persona_id" in frame.columns else "self"
    inst = load_instrument(instrument)
    full = complete_frame(frame.reset_index(drop=True))
    check_responses(
        full,
        file=label,
        locate=row_locator,
        mode=mode,
        scale_low=inst.scale.low,
        scale_high=inst.scale.high,
        item_ids=inst.item_ids.tolist(),
    )
    has_distribution = bool(full["distribution"].notna().any())
    return Responses(
        frame=full,
        label=label,
        mode=mode,
        method=method or ("logprobs" if has_distribution else "sample"),
        instrument=inst.name,
        run=None,
        has_failures="failures" in frame.columns,
    )


def _tables_in(folder: Path) -> int:
    """How many ``.csv`` and ``.eval`` files sit directly in ``folder`` (0 if unreadable)."""
    try:
        return sum(
            1 for p in folder.iterdir() if p.suffix.lower() in (".csv", EVAL_SUFFIX) and p.is_file()
        )
    except OSError:
        return 0


def _no_tables(path: Path) -> DataError:
    """The error for a folder without tables, pointing at its subfolders that hold some
    (the published layout: ``costa2026/base/*.csv``)."""
    nested = {sub: n for sub in sorted(path.iterdir()) if sub.is_dir() and (n := _tables_in(sub))}
    if not nested:
        return DataError(f"folder {path} holds no .csv files; give {_FORMS}")
    names = [f"{sub.name}/" for sub in nested]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return DataError(
        f"folder {path} holds no .csv files; its subfolder{'s' if len(names) > 1 else ''} "
        f"{shown} hold{'' if len(names) > 1 else 's'} {sum(nested.values())}: "
        f"pass one of them, e.g. {next(iter(nested))}"
    )


def load_sources(spec: str, *, instrument: str | None = None) -> list[Responses]:
    """The response tables a SOURCE argument names, in a stable order.

    ``instrument`` checks CSV files (default ``mfq30``) and Parquet files
    (default: the instrument their run recorded). Anything missing, empty or
    malformed raises a one-line DataError.
    """
    path = Path(spec)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file()),
            key=lambda p: p.name,
        )
        if not files:
            logs = sorted(
                (p for p in path.iterdir() if p.suffix.lower() == EVAL_SUFFIX and p.is_file()),
                key=lambda p: p.name,
            )
            if logs:
                return [_from_eval(f, instrument) for f in logs]
            raise _no_tables(path)
        return [_from_file(f, instrument) for f in files]
    if path.is_file():
        if path.suffix.lower() == EVAL_SUFFIX:
            return [_from_eval(path, instrument)]
        if _kind(path) == "store":
            return _from_store(path, None)
        return [_from_file(path, instrument)]
    store, sep, run_id = spec.rpartition(":")
    if sep and store and Path(store).is_file():
        if not run_id:
            raise DataError(f"{spec} names no run; write STORE.db:RUN_ID or just STORE.db")
        return _from_store(Path(store), run_id)
    if sep and store and not Path(store).exists():
        raise DataError(f"{spec}: neither a file nor a store {store} exists; check the path")
    raise DataError(f"{spec} does not exist; give {_FORMS}")

"""The response store: an SQLite file, every answer committed as it arrives.

One file holds many runs. The ``responses`` table is keyed by (run, persona,
item, repetition), so a slot can never be written twice: re-running a run id
continues where it stopped. The file uses WAL journaling with
``synchronous=NORMAL``: every committed write survives the process being
killed (a power cut may lose the last commits, never corrupt the file).
Several :class:`ResponseStore` objects, in threads or processes, may share one
file; writers wait for each other up to ``timeout_s``.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataError
from ._clock import now_utc
from ._frame import RESPONSE_COLUMNS, complete_frame
from ._opening import (
    check_read_only,
    check_store_file,
    open_read_only,
    release_wal_files,
    setup_store,
    transaction,
    writable_beside,
)
from ._records import ResponseRow, RunInfo
from ._schema import (
    RESPONSE_TABLE_COLUMNS,
    RUN_PROTOCOL_COLUMNS,
    RUN_TABLE_COLUMNS,
    SCHEMA_VERSION,
    STORE_TABLES,
    insert_sql,
)
from ._sql_values import (
    canonical_differences,
    check_run,
    column_values,
    json_or_none,
    loads_or_none,
    response_params,
    run_from_row,
    run_params,
    to_json,
)

DEFAULT_STORE = "persona-collapse.db"
"""The store file ``run``, ``verify``, ``finetune`` and ``import`` use without ``--store``."""

DEFAULT_COMPARE = ("model", *RUN_PROTOCOL_COLUMNS)
"""Fields :meth:`ResponseStore.ensure_run` requires to match when a run is resumed."""

_INSERT_RESPONSE = insert_sql("responses", RESPONSE_TABLE_COLUMNS, "IGNORE")
_INSERT_RUN = insert_sql("runs", RUN_TABLE_COLUMNS, "IGNORE")
_SELECT_FRAME = (
    "SELECT persona_id, item_id, repetition, rating, failures, raw_text, collected_at, "
    "distribution, latency_ms, prompt_tokens, completion_tokens, extra "
    "FROM responses WHERE run_id = ? ORDER BY persona_id, item_id, repetition"
)


class ResponseStore:
    """A persona-collapse response store in one SQLite file.

    Opening creates the file and its tables when missing (unless ``create`` is
    False). Every method commits before returning. Safe to share between
    threads (calls are serialised); for parallel writers open one object per
    thread or process on the same file. Usable as a context manager.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        timeout_s: float = 30.0,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self._timeout_s = timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self.read_only = read_only
        self.schema_version = SCHEMA_VERSION
        check_store_file(self.path, create and not read_only)
        if read_only:
            conn = open_read_only(self.path, timeout_s)
        else:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as exc:
                raise DataError(
                    f"cannot open the store {self.path} ({exc}); choose another --store path"
                ) from exc
        try:
            with self._guard():
                if read_only:
                    self.schema_version = check_read_only(self.path, conn)
                else:
                    setup_store(self.path, conn, self._timeout_s)
        except BaseException:
            conn.close()
            if read_only:
                release_wal_files(self.path)
            raise
        self._conn = conn

    @classmethod
    def for_reading(cls, path: str | os.PathLike[str]) -> ResponseStore:
        """An existing store opened to read runs: read-only (``mode=ro``, nothing written).

        A store of an older schema is migrated in place first, as any writer would,
        when its folder is writable; on read-only media it is read as it is.
        """
        store = cls(path, create=False, read_only=True)
        if store.schema_version < SCHEMA_VERSION and writable_beside(store.path):
            store.close()
            return cls(path, create=False)
        return store

    # -- plumbing ------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite failures into one-line DataErrors naming the store."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise DataError(
                    f"store {self.path} stayed locked by another writer for over "
                    f"{self._timeout_s:g} s; try again when it has finished"
                ) from exc
            raise DataError(f"store {self.path} cannot be used ({text})") from exc
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"store {self.path} is damaged or no persona-collapse store ({exc}); "
                "restore it from a copy or choose another --store path"
            ) from exc

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard():
            if self._conn is None:
                raise ValueError("the store is closed")
            yield self._conn

    def connection(self) -> AbstractContextManager[sqlite3.Connection]:
        """The store's connection, serialised by its lock, SQLite errors raised as DataError.

        For modules whose tables the store's schema declares (``verify``,
        ``finetune``); autocommit mode, so each statement commits at once.
        """
        return self._using()

    def select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one query (``?`` placeholders filled from ``params``), as tuples.

        A read through :meth:`connection`, for the modules whose tables the store's schema
        declares (``verify``, batch jobs, variants) and the store itself.
        """
        with self._using() as conn:
            rows: list[tuple[Any, ...]] = conn.execute(sql, tuple(params)).fetchall()
        return rows

    def ensure_record(
        self, table: str, columns: Sequence[str], values: Sequence[Any]
    ) -> tuple[Any, ...]:
        """Insert a run record keyed by its first column unless one exists; the stored row.

        ``table`` is one of the store's run tables (``runs``, ``verify_runs``);
        ``columns`` name ``values`` in table order. The row returned is the one
        stored (the original when the key already existed), in ``columns`` order;
        the caller compares it with what it asked for. This is the one
        insert-or-resume step behind :meth:`ensure_run` and ``verify``'s.
        """
        if table not in STORE_TABLES:
            raise ValueError(f"{table!r} is not a table of the store's schema")
        names = ", ".join(columns)
        with self._using() as conn:
            conn.execute(insert_sql(table, columns, "IGNORE"), tuple(values))
            row = conn.execute(
                f"SELECT {names} FROM {table} WHERE {columns[0]} = ?", (values[0],)
            ).fetchone()
        assert row is not None
        return tuple(row)

    def _unknown_run(self, run_id: str) -> DataError:
        ids = [r.run_id for r in self.list_runs()]
        listing = f"available runs: {', '.join(ids)}" if ids else "the store has no runs yet"
        return DataError(f"run {run_id!r} is not in the store {self.path}; {listing}")

    # -- runs ----------------------------------------------------------------

    def create_run(self, run: RunInfo) -> RunInfo:
        """Record a new run (``created`` filled with the current UTC time if empty).

        Raises DataError if the run id already exists. Returns the run as stored.
        """
        check_run(run)
        stored = dataclasses.replace(run, created=run.created or now_utc())
        with self._using() as conn:
            inserted = conn.execute(_INSERT_RUN, run_params(stored)).rowcount
        if inserted != 1:
            raise DataError(
                f"run {run.run_id!r} already exists in the store {self.path}; "
                "choose another --run-id"
            )
        result = self.get_run(run.run_id)
        assert result is not None
        return result

    def ensure_run(self, run: RunInfo, *, compare: Sequence[str] = DEFAULT_COMPARE) -> RunInfo:
        """The stored run with ``run``'s id, creating it if new.

        If it exists, every field named in ``compare`` must equal ``run``'s
        (``settings`` compared as JSON); otherwise a DataError names each
        differing field with the stored and the new value. Returns the stored
        run (its ``created`` is the original one).
        """
        known = {f.name for f in dataclasses.fields(RunInfo)}
        unknown = [name for name in compare if name not in known]
        if unknown:
            raise ValueError(f"cannot compare unknown RunInfo fields {unknown}")
        check_run(run)
        stored = dataclasses.replace(run, created=run.created or now_utc())
        existing = run_from_row(self.ensure_record("runs", RUN_TABLE_COLUMNS, run_params(stored)))
        differing = canonical_differences(
            dataclasses.asdict(existing), dataclasses.asdict(run), compare
        )
        if differing:
            old = ", ".join(f"{n}={getattr(existing, n)!r}" for n in differing)
            new = ", ".join(f"{n}={getattr(run, n)!r}" for n in differing)
            raise DataError(
                f"run {run.run_id!r} was started with {old}, not {new}; "
                "use a new --run-id or the original settings"
            )
        return existing

    def grow_run(self, run: RunInfo, *, before: RunInfo) -> RunInfo:
        """Record that a run grew (a top-up): its new settings and persona-set hash.

        ``before`` is the record as the caller read it; the update happens only
        if the stored record still equals it (else a DataError: someone else
        changed the run meanwhile). Only ``settings`` and ``persona_set_hash``
        change; ``run.settings`` should carry the history of earlier sizes
        (``grown_from``, see ``collect``). Returns the stored run.
        """
        check_run(run)
        with self._using() as conn:
            changed = conn.execute(
                "UPDATE runs SET settings = ?, persona_set_hash = ? "
                "WHERE run_id = ? AND settings = ? AND persona_set_hash = ?",
                (
                    to_json(run.settings, f"settings of run {run.run_id!r}"),
                    run.persona_set_hash,
                    run.run_id,
                    to_json(before.settings, f"settings of run {run.run_id!r}"),
                    before.persona_set_hash,
                ),
            ).rowcount
        if changed != 1:
            raise DataError(
                f"run {run.run_id!r} changed in the store {self.path} while it was being "
                "topped up; run the command again"
            )
        return self.require_run(run.run_id)

    def get_run(self, run_id: str) -> RunInfo | None:
        """The run with this id, or None."""
        with self._using() as conn:
            row = conn.execute(
                f"SELECT {', '.join(RUN_TABLE_COLUMNS)} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        return None if row is None else run_from_row(row)

    def require_run(self, run_id: str) -> RunInfo:
        """The run with this id; a DataError listing the stored run ids if there is none."""
        run = self.get_run(run_id)
        if run is None:
            raise self._unknown_run(run_id)
        return run

    def list_runs(self) -> list[RunInfo]:
        """All runs, oldest first (ties by id)."""
        rows = self.select(
            f"SELECT {', '.join(RUN_TABLE_COLUMNS)} FROM runs ORDER BY created, run_id"
        )
        return [run_from_row(r) for r in rows]

    # -- responses -----------------------------------------------------------

    def _insert(self, run_id: str, params: Sequence[tuple[Any, ...]]) -> int:
        with self._using() as conn:
            try:
                with transaction(conn):
                    before = conn.total_changes
                    conn.executemany(_INSERT_RESPONSE, params)
                    return conn.total_changes - before
            except sqlite3.IntegrityError as exc:
                raise self._integrity_error(run_id, exc) from exc

    def _integrity_error(self, run_id: str, exc: sqlite3.IntegrityError) -> DataError:
        if "FOREIGN KEY" in str(exc).upper():
            return self._unknown_run(run_id)
        return DataError(f"a response of run {run_id!r} cannot be stored ({exc})")

    def add_response(self, run_id: str, row: ResponseRow) -> bool:
        """Store one answer, committed before returning.

        Returns False (and changes nothing) if the slot was already stored.
        """
        params = response_params(run_id, row)
        with self._using() as conn:
            try:
                return bool(conn.execute(_INSERT_RESPONSE, params).rowcount == 1)
            except sqlite3.IntegrityError as exc:
                raise self._integrity_error(run_id, exc) from exc

    def add_responses(self, run_id: str, rows: Iterable[ResponseRow]) -> int:
        """Store many answers in one transaction; returns how many slots were new."""
        return self._insert(run_id, [response_params(run_id, r) for r in rows])

    def add_frame(self, run_id: str, frame: pd.DataFrame) -> int:
        """Store a response frame (published or :data:`RESPONSE_COLUMNS` names) at once.

        Same rules as :meth:`add_responses` (existing slots are kept); the
        frame's ``response`` becomes ``raw_text``. Returns how many slots were new.
        """
        full = complete_frame(frame)
        columns = [
            [run_id] * len(full),
            full["persona_id"].tolist(),
            full["question_id"].tolist(),
            full["run_index"].tolist(),
            full["rating"].tolist(),
            column_values(full["failures"]),
            full["response"].tolist(),
            [json_or_none(d, f"a distribution of run {run_id!r}") for d in full["distribution"]],
            full["collected_at"].tolist(),
            column_values(full["latency_ms"]),
            column_values(full["prompt_tokens"]),
            column_values(full["completion_tokens"]),
            [json_or_none(e, f"an extra value of run {run_id!r}") for e in full["extra"]],
        ]
        return self._insert(run_id, list(zip(*columns, strict=True)))

    def completed_slots(self, run_id: str) -> set[tuple[int, int, int]]:
        """The stored slots ``(persona_id, item_id, repetition)`` of a run, missing ratings included."""
        rows = self.select(
            "SELECT persona_id, item_id, repetition FROM responses WHERE run_id = ?", (run_id,)
        )
        return {(int(p), int(i), int(r)) for p, i, r in rows}

    def count_responses(self, run_id: str) -> int:
        """Number of stored slots of a run (0 for an unknown run)."""
        with self._using() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM responses WHERE run_id = ?", (run_id,)
            ).fetchone()
        return int(row[0])

    def responses_frame(self, run_id: str) -> pd.DataFrame:
        """All responses of a run, sorted by persona_id, question_id, run_index.

        Columns and dtypes as :data:`RESPONSE_COLUMNS` (``failures`` nullable
        ``Int64``; ``response`` ``""`` where no raw text was stored;
        ``distribution`` a list or None). Unknown run: DataError listing the
        stored runs.
        """
        self.require_run(run_id)
        rows = self.select(_SELECT_FRAME, (run_id,))
        columns: list[list[Any]] = (
            [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in RESPONSE_COLUMNS]
        )
        data = dict(zip(RESPONSE_COLUMNS, columns, strict=True))
        data["distribution"] = [loads_or_none(t) for t in data["distribution"]]
        data["extra"] = [loads_or_none(t) for t in data["extra"]]
        frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in data.items()})
        return complete_frame(frame)

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                if self.read_only:
                    release_wal_files(self.path)

    def __enter__(self) -> ResponseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseStore({str(self.path)!r})"

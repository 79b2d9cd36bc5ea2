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
import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import pandas as pd

from ..errors import DataError
from ._clock import now_utc
from ._frame import RESPONSE_COLUMNS, complete_frame
from ._records import METHODS, MODES, ResponseRow, RunInfo
from ._run_ids import check_run_id
from ._schema import (
    CORE_TABLES,
    DDL,
    MIGRATIONS,
    RESPONSE_TABLE_COLUMNS,
    RUN_TABLE_COLUMNS,
    SCHEMA_VERSION,
    SQLITE_MAGIC,
    STORE_TABLES,
)

DEFAULT_STORE = "persona-collapse.db"
"""The store file ``run``, ``verify``, ``finetune`` and ``import`` use without ``--store``."""

DEFAULT_COMPARE = (
    "model",
    "method",
    "mode",
    "instrument",
    "settings",
    "protocol_hash",
    "persona_set_hash",
)
"""Fields :meth:`ResponseStore.ensure_run` requires to match when a run is resumed."""

_INSERT_RESPONSE = (
    f"INSERT OR IGNORE INTO responses ({', '.join(RESPONSE_TABLE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(RESPONSE_TABLE_COLUMNS))})"
)
_INSERT_RUN = (
    f"INSERT OR IGNORE INTO runs ({', '.join(RUN_TABLE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(RUN_TABLE_COLUMNS))})"
)
_SELECT_FRAME = (
    "SELECT persona_id, item_id, repetition, rating, failures, raw_text, collected_at, "
    "distribution, latency_ms, prompt_tokens, completion_tokens, extra "
    "FROM responses WHERE run_id = ? ORDER BY persona_id, item_id, repetition"
)


def _plain(value: Any) -> Any:
    """JSON fallback for numpy arrays and scalars (``tolist`` gives Python values)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(
            value, sort_keys=True, ensure_ascii=False, allow_nan=False, default=_plain
        )
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} cannot be stored as JSON ({exc}); use plain values") from exc


def _json_or_none(value: Any, what: str) -> str | None:
    return None if value is None else _to_json(value, what)


def _loads_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _none_if_nan(value: Any) -> Any:
    """None for None, NaN and pandas' NA; the value otherwise."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _response_params(run_id: str, row: ResponseRow) -> tuple[Any, ...]:
    where = f"response ({row.persona_id}, {row.item_id}, {row.repetition}) of run {run_id!r}"
    return (
        run_id,
        int(row.persona_id),
        int(row.item_id),
        int(row.repetition),
        int(row.rating),
        None if row.failures is None else int(row.failures),
        row.raw_text,
        _json_or_none(row.distribution, f"distribution of {where}"),
        row.collected_at,
        _none_if_nan(row.latency_ms),
        None if row.prompt_tokens is None else int(row.prompt_tokens),
        None if row.completion_tokens is None else int(row.completion_tokens),
        _json_or_none(row.extra, f"extra of {where}"),
    )


def _column_values(series: pd.Series) -> list[Any]:
    """Python values of a column with every missing value as None."""
    values = series.astype(object)
    return values.where(series.notna(), None).tolist()


def _run_params(run: RunInfo) -> tuple[Any, ...]:
    values = dataclasses.asdict(run)
    values["settings"] = _to_json(run.settings, f"settings of run {run.run_id!r}")
    values["has_failures"] = int(bool(run.has_failures))
    return tuple(values[c] for c in RUN_TABLE_COLUMNS)


def _run_from_row(row: Sequence[Any]) -> RunInfo:
    values = dict(zip(RUN_TABLE_COLUMNS, row, strict=True))
    values["settings"] = json.loads(values["settings"])
    values["has_failures"] = bool(values["has_failures"])
    return RunInfo(**values)


def _canonical(value: Any) -> Any:
    """``value`` as it reads back from the store (JSON round trip), for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True, default=_plain))


def canonical_differences(
    old: dict[str, Any], new: dict[str, Any], names: Sequence[str]
) -> list[str]:
    """The names among ``names`` whose values differ once read back as JSON (``settings``)."""
    return [name for name in names if _canonical(old[name]) != _canonical(new[name])]


def _check_run(run: RunInfo) -> None:
    check_run_id(run.run_id)
    if run.method not in METHODS:
        raise DataError(f"method {run.method!r} is unknown; use one of {', '.join(METHODS)}")
    if run.mode not in MODES:
        raise DataError(f"mode {run.mode!r} is unknown; use one of {', '.join(MODES)}")


def _table_names(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(r[0]) for r in rows}


def _has_tables(conn: sqlite3.Connection, tables: frozenset[str] = STORE_TABLES) -> bool:
    return tables <= _table_names(conn)


def _writable_beside(path: Path) -> bool:
    """Whether SQLite may create files next to ``path`` (its ``-wal``/``-shm``).

    ``os.access`` answers for read-only mounts; the permission bits catch a
    folder or file made read-only with ``chmod a-w`` even for root, whom
    ``os.access`` always allows.
    """
    folder = path.resolve().parent
    try:
        modes = (folder.stat().st_mode, path.stat().st_mode)
    except OSError:
        return False
    return all(m & 0o222 for m in modes) and os.access(folder, os.W_OK)


def _migrations(version: int) -> list[str]:
    """The statements taking a store of schema ``version`` to :data:`SCHEMA_VERSION`."""
    return [s for v in range(version, SCHEMA_VERSION) for s in MIGRATIONS[v]]


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken at once so that concurrent writers queue (busy_timeout)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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
        self._check_file(create and not read_only)
        if read_only:
            conn = self._open_read_only()
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
                    self._check_read_only(conn)
                else:
                    self._setup(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @classmethod
    def for_reading(cls, path: str | os.PathLike[str]) -> ResponseStore:
        """An existing store opened to read runs: read-only (``mode=ro``, nothing written).

        A store of an older schema is migrated in place first, as any writer would,
        when its folder is writable; on read-only media it is read as it is.
        """
        store = cls(path, create=False, read_only=True)
        if store.schema_version < SCHEMA_VERSION and _writable_beside(store.path):
            store.close()
            return cls(path, create=False)
        return store

    # -- opening -------------------------------------------------------------

    def _check_file(self, create: bool) -> None:
        folder = self.path.parent
        if not folder.is_dir():
            raise DataError(
                f"store folder {folder} does not exist; create it or choose another --store path"
            )
        if self.path.is_dir():
            raise DataError(
                f"{self.path} is a folder, not a store file; choose another --store path"
            )
        if not self.path.exists():
            if not create:
                raise DataError(
                    f"store {self.path} does not exist; check the path "
                    "(a store is created by 'run' or 'import')"
                )
            return
        try:
            with self.path.open("rb") as handle:
                head = handle.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise DataError(f"cannot read the store {self.path} ({exc.strerror})") from exc
        if head and head != SQLITE_MAGIC:
            raise DataError(
                f"{self.path} is not a persona-collapse store (not an SQLite database); "
                "choose another --store path"
            )

    def _open_read_only(self) -> sqlite3.Connection:
        """A connection that never writes: SQLite ``mode=ro``, no journal-mode switch.

        On media SQLite cannot write beside the file (a read-only mount, a folder
        without write permission) the WAL index cannot be created, so the file is
        opened ``immutable`` (no locks, no ``-wal``/``-shm`` files); nobody can be
        writing there. Elsewhere ``mode=ro`` reads a store a run is still filling.
        """
        target = quote(str(self.path.resolve()))
        plain = f"file:{target}?mode=ro"
        frozen = f"{plain}&immutable=1"
        attempts = [frozen] if not _writable_beside(self.path) else [plain, frozen]
        error: sqlite3.Error | None = None
        for uri in attempts:
            try:
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=self._timeout_s,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute(f"PRAGMA busy_timeout = {int(self._timeout_s * 1000)}")
                conn.execute("PRAGMA user_version").fetchone()
            except sqlite3.OperationalError as exc:
                error = exc
                continue
            return conn
        raise DataError(
            f"cannot open the store {self.path} for reading ({error}); check its permissions"
        )

    def _check_read_only(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise DataError(
                f"store {self.path} has schema version {version}, newer than this "
                f"persona-collapse supports ({SCHEMA_VERSION}); upgrade persona-collapse"
            )
        if version == 0 and not _has_tables(conn, CORE_TABLES):
            raise DataError(
                f"{self.path} is not a persona-collapse store (no runs table); choose another store"
            )
        if version > 0 and not _has_tables(conn, CORE_TABLES):
            raise DataError(
                f"store {self.path} lacks its tables (damaged or not a persona-collapse "
                "store); choose another store"
            )
        self.schema_version = version  # older versions hold the same runs and responses

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise DataError(
                f"store {self.path} has schema version {version}, newer than this "
                f"persona-collapse supports ({SCHEMA_VERSION}); upgrade persona-collapse"
            )
        if version == SCHEMA_VERSION and _has_tables(conn):
            return
        with _transaction(conn):
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = _table_names(conn)
            if version == 0 and tables - CORE_TABLES:
                raise DataError(
                    f"{self.path} is an SQLite database of another program, not a "
                    "persona-collapse store; choose another --store path"
                )
            if version > 0 and not _has_tables(conn, CORE_TABLES):
                raise DataError(
                    f"store {self.path} lacks its tables (damaged or not a persona-collapse "
                    "store); choose another --store path"
                )
            statements = DDL if version in (0, SCHEMA_VERSION) else _migrations(version)
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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
                f"{self.path} is not a usable persona-collapse store ({exc}); "
                "choose another --store path"
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
            conn.execute(
                f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})",
                tuple(values),
            )
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
        _check_run(run)
        stored = dataclasses.replace(run, created=run.created or now_utc())
        with self._using() as conn:
            inserted = conn.execute(_INSERT_RUN, _run_params(stored)).rowcount
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
        _check_run(run)
        stored = dataclasses.replace(run, created=run.created or now_utc())
        existing = _run_from_row(self.ensure_record("runs", RUN_TABLE_COLUMNS, _run_params(stored)))
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
        _check_run(run)
        with self._using() as conn:
            changed = conn.execute(
                "UPDATE runs SET settings = ?, persona_set_hash = ? "
                "WHERE run_id = ? AND settings = ? AND persona_set_hash = ?",
                (
                    _to_json(run.settings, f"settings of run {run.run_id!r}"),
                    run.persona_set_hash,
                    run.run_id,
                    _to_json(before.settings, f"settings of run {run.run_id!r}"),
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
        return None if row is None else _run_from_row(row)

    def require_run(self, run_id: str) -> RunInfo:
        """The run with this id; a DataError listing the stored run ids if there is none."""
        run = self.get_run(run_id)
        if run is None:
            raise self._unknown_run(run_id)
        return run

    def list_runs(self) -> list[RunInfo]:
        """All runs, oldest first (ties by id)."""
        with self._using() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(RUN_TABLE_COLUMNS)} FROM runs ORDER BY created, run_id"
            ).fetchall()
        return [_run_from_row(r) for r in rows]

    # -- responses -----------------------------------------------------------

    def _insert(self, run_id: str, params: Sequence[tuple[Any, ...]]) -> int:
        with self._using() as conn:
            try:
                with _transaction(conn):
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
        params = _response_params(run_id, row)
        with self._using() as conn:
            try:
                return bool(conn.execute(_INSERT_RESPONSE, params).rowcount == 1)
            except sqlite3.IntegrityError as exc:
                raise self._integrity_error(run_id, exc) from exc

    def add_responses(self, run_id: str, rows: Iterable[ResponseRow]) -> int:
        """Store many answers in one transaction; returns how many slots were new."""
        return self._insert(run_id, [_response_params(run_id, r) for r in rows])

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
            _column_values(full["failures"]),
            full["response"].tolist(),
            [_json_or_none(d, f"a distribution of run {run_id!r}") for d in full["distribution"]],
            full["collected_at"].tolist(),
            _column_values(full["latency_ms"]),
            _column_values(full["prompt_tokens"]),
            _column_values(full["completion_tokens"]),
            [_json_or_none(e, f"an extra value of run {run_id!r}") for e in full["extra"]],
        ]
        return self._insert(run_id, list(zip(*columns, strict=True)))

    def completed_slots(self, run_id: str) -> set[tuple[int, int, int]]:
        """The stored slots ``(persona_id, item_id, repetition)`` of a run, missing ratings included."""
        with self._using() as conn:
            rows = conn.execute(
                "SELECT persona_id, item_id, repetition FROM responses WHERE run_id = ?",
                (run_id,),
            ).fetchall()
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
        with self._using() as conn:
            rows = conn.execute(_SELECT_FRAME, (run_id,)).fetchall()
        columns: list[list[Any]] = (
            [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in RESPONSE_COLUMNS]
        )
        data = dict(zip(RESPONSE_COLUMNS, columns, strict=True))
        data["distribution"] = [_loads_or_none(t) for t in data["distribution"]]
        data["extra"] = [_loads_or_none(t) for t in data["extra"]]
        frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in data.items()})
        return complete_frame(frame)

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ResponseStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseStore({str(self.path)!r})"

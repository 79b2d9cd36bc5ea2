"""Opening a store file: checking it is one, read-only connections, pragmas, tables and migrations.

Errors are one-line :class:`DataError` messages naming the file and what to do.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from ..errors import DataError
from ._schema import CORE_TABLES, DDL, MIGRATIONS, SCHEMA_VERSION, SQLITE_MAGIC, STORE_TABLES

__all__ = [
    "check_read_only",
    "check_store_file",
    "open_read_only",
    "release_wal_files",
    "setup_store",
    "transaction",
    "writable_beside",
]

_HEADER_BYTES = 100
"""Length of an SQLite file's header (the magic string, page size, page count, ...)."""


def _table_names(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(r[0]) for r in rows}


def _has_tables(conn: sqlite3.Connection, tables: frozenset[str] = STORE_TABLES) -> bool:
    return tables <= _table_names(conn)


def writable_beside(path: Path) -> bool:
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
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken at once so that concurrent writers queue (busy_timeout)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def check_store_file(path: Path, create: bool) -> None:
    """DataError unless ``path`` is an SQLite file, or (``create``) a new file in an existing folder."""
    folder = path.parent
    if not folder.is_dir():
        raise DataError(
            f"store folder {folder} does not exist; create it or choose another --store path"
        )
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a store file; choose another --store path")
    if not path.exists():
        if not create:
            raise DataError(
                f"store {path} does not exist; check the path "
                "(a store is created by 'run' or 'import')"
            )
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise DataError(f"cannot read the store {path} ({exc.strerror})") from exc
    if head and head != SQLITE_MAGIC:
        raise DataError(
            f"{path} is not a persona-collapse store (not an SQLite database); "
            "choose another --store path"
        )
    if head:
        _check_whole(path)


def _header_size(header: bytes) -> int | None:
    """The file size (bytes) an SQLite header declares: page size x page count; None if unsaid.

    The page count (offset 28) holds only when its "version valid for" number
    (offset 92) equals the change counter (offset 24), as SQLite's file format says.
    """
    if len(header) < _HEADER_BYTES:
        return None
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if header[92:96] != header[24:28] or pages == 0:
        return None
    return page_size * pages


def _check_whole(path: Path) -> None:
    """DataError when the SQLite file at ``path`` is shorter than its header says (cut short).

    Skipped while a write-ahead log beside it holds pages: a checkpoint in
    progress writes the header before the pages that grow the file.
    """
    try:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return
        size = path.stat().st_size
        with path.open("rb") as handle:
            header = handle.read(_HEADER_BYTES)
    except OSError as exc:
        raise DataError(f"cannot read the store {path} ({exc.strerror})") from exc
    declared = _header_size(header)
    if len(header) < _HEADER_BYTES or (declared is not None and size < declared):
        whole = f"{declared:,}" if declared is not None else "at least 100"
        raise DataError(
            f"store {path} is cut short ({size:,} of {whole} bytes: not a whole SQLite file, "
            "e.g. an interrupted copy); copy it again whole or choose another store"
        )


def _check_schema_version(path: Path, version: int) -> None:
    """DataError for a schema version this persona-collapse cannot read (newer, or negative)."""
    if version > SCHEMA_VERSION:
        raise DataError(
            f"store {path} has schema version {version}, newer than this "
            f"persona-collapse supports ({SCHEMA_VERSION}); upgrade persona-collapse"
        )
    if version < 0:
        raise DataError(
            f"store {path} has schema version {version}, which no persona-collapse writes "
            "(damaged, or not a persona-collapse store); choose another store"
        )


def _damaged(path: Path, exc: sqlite3.DatabaseError) -> DataError:
    """The one line for a file SQLite cannot read as a database (malformed, not a database)."""
    return DataError(
        f"store {path} is damaged ({exc}): not a whole SQLite file; "
        "restore it from a copy or choose another store"
    )


def open_read_only(path: Path, timeout_s: float) -> sqlite3.Connection:
    """A connection that never writes: SQLite ``mode=ro``, no journal-mode switch.

    On media SQLite cannot write beside the file (a read-only mount, a folder
    without write permission) the WAL index cannot be created, so the file is
    opened ``immutable`` (no locks, no ``-wal``/``-shm`` files); nobody can be
    writing there. Elsewhere ``mode=ro`` reads a store a run is still filling.
    """
    target = quote(str(path.resolve()))
    plain = f"file:{target}?mode=ro"
    frozen = f"{plain}&immutable=1"
    attempts = [frozen] if not writable_beside(path) else [plain, frozen]
    error: sqlite3.Error | None = None
    for uri in attempts:
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            conn.execute("PRAGMA user_version").fetchone()
        except sqlite3.OperationalError as exc:
            error = exc
            continue
        except sqlite3.DatabaseError as exc:  # malformed, or not a database
            conn.close()
            raise _damaged(path, exc) from exc
        return conn
    raise DataError(f"cannot open the store {path} for reading ({error}); check its permissions")


def release_wal_files(path: Path) -> None:
    """Let SQLite remove the ``-wal``/``-shm`` files a closed read-only connection left.

    A ``mode=ro`` connection to a WAL store creates them when they are absent
    but may not delete them when it closes, so every read of a finished store
    left them behind. A short read-write connection that reads the header and
    closes removes them, checkpointing nothing but committed pages, and only
    when it is the last connection to the file (SQLite decides with a lock: a
    run still writing keeps them). Nothing is done when neither file is there
    or on media SQLite cannot write to (opened ``immutable``, no such files).
    """
    if not writable_beside(path) or not any(
        Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm")
    ):
        return
    try:
        conn = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error:
        pass
    finally:
        conn.close()


def check_read_only(path: Path, conn: sqlite3.Connection) -> int:
    """The schema version of a store opened read-only; DataError when it cannot be read as one."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    _check_schema_version(path, version)
    if version == 0 and not _has_tables(conn, CORE_TABLES):
        raise DataError(
            f"{path} is not a persona-collapse store (no runs table); choose another store"
        )
    if version > 0 and not _has_tables(conn, CORE_TABLES):
        raise DataError(
            f"store {path} lacks its tables (damaged or not a persona-collapse "
            "store); choose another store"
        )
    return version  # older versions hold the same runs and responses


def setup_store(path: Path, conn: sqlite3.Connection, timeout_s: float) -> None:
    """Pragmas (WAL, busy timeout, foreign keys), then create or migrate the tables."""
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    _check_schema_version(path, version)
    if version == SCHEMA_VERSION and _has_tables(conn):
        return
    with transaction(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        _check_schema_version(path, version)
        tables = _table_names(conn)
        if version == 0 and tables - CORE_TABLES:
            raise DataError(
                f"{path} is an SQLite database of another program, not a "
                "persona-collapse store; choose another --store path"
            )
        if version > 0 and not _has_tables(conn, CORE_TABLES):
            raise DataError(
                f"store {path} lacks its tables (damaged or not a persona-collapse "
                "store); choose another --store path"
            )
        statements = DDL if version in (0, SCHEMA_VERSION) else _migrations(version)
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

"""One writer per run: a lease in the store, held by one process and kept alive by its heartbeat.

Two collections writing the same run id would each plan the slots the other
is already asking for (two runs on one id asked 711 slots for 450). Before a
collection plans its slots it takes the run's lease, a row of ``run_leases``
naming its process id, host, when it was taken and its last heartbeat (Unix
seconds). A second writer finds the lease held and stops with one line saying
who holds it. A lease is *stale*, and taken over, when its holder's process
is gone on this host, or when its heartbeat is older than ``stale_after_s``
(a holder on another host, or one that hangs). The holder refreshes its
heartbeat every ``heartbeat_s`` seconds while it works
(:meth:`RunLease.keep_while`) and releases the lease when it ends, also on
errors and Ctrl-C (:meth:`RunLease.release`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO, TypeVar

from ..errors import DataError
from ._opening import transaction
from ._schema import LEASE_COLUMNS, insert_sql

if TYPE_CHECKING:
    from ._sqlite import ResponseStore

T = TypeVar("T")

#: Seconds between two heartbeats of a holder.
HEARTBEAT_S = 10.0
#: A heartbeat older than this (seconds) marks a lease as stale.
LEASE_STALE_S = 60.0


class LeaseHeldError(DataError):
    """Another live writer holds the run's lease (one line: who, since when, what to do)."""


@dataclass(frozen=True)
class LeaseHolder:
    """A row of ``run_leases``: who writes ``run_id``; ``heartbeat`` in Unix seconds."""

    run_id: str
    pid: int
    host: str
    token: str
    since: str
    heartbeat: float

    def describe(self) -> str:
        """``pid 123 on host h since 2026-...`` (no token: it is not shown)."""
        return f"pid {self.pid} on host {self.host} since {self.since}"


def this_host() -> str:
    """The host name a lease records for this machine."""
    return socket.gethostname() or "localhost"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (True when that cannot be told)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill would terminate it there; rely on the heartbeat
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def is_stale(holder: LeaseHolder, *, now: float, stale_after_s: float = LEASE_STALE_S) -> bool:
    """Whether ``holder``'s lease may be taken over: its process is gone, or it went silent."""
    if holder.host == this_host() and not pid_alive(holder.pid):
        return True
    return now - holder.heartbeat > stale_after_s


_COLUMNS = ", ".join(LEASE_COLUMNS)
_REPLACE = insert_sql("run_leases", LEASE_COLUMNS, "REPLACE")


def _holder(row: tuple[object, ...] | None) -> LeaseHolder | None:
    if row is None:
        return None
    run_id, pid, host, token, since, heartbeat = row
    return LeaseHolder(
        str(run_id), int(str(pid)), str(host), str(token), str(since), float(str(heartbeat))
    )


class RunLease:
    """The lease on one run id of one store, for one writer.

    ``acquire()`` takes it (or raises :class:`LeaseHeldError`), ``keep_while()``
    refreshes its heartbeat while awaiting the work, ``release()`` gives it up
    (idempotent). ``note``, when given, gets one line when a stale lease is
    taken over.
    """

    def __init__(
        self,
        store: ResponseStore,
        run_id: str,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        stale_after_s: float = LEASE_STALE_S,
        note: TextIO | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.note = note
        self.token = secrets.token_hex(8)
        self.held = False
        #: The stale holder this lease replaced, if any.
        self.taken_over: LeaseHolder | None = None

    def holder(self) -> LeaseHolder | None:
        """Who holds the run's lease now (None when nobody does)."""
        with self.store.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM run_leases WHERE run_id = ?", (self.run_id,)
            ).fetchone()
        return _holder(row)

    def acquire(self) -> RunLease:
        """Take the lease, taking over a stale one; raises :class:`LeaseHeldError` when held."""
        now = time.time()
        since = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        with self.store.connection() as conn, transaction(conn):
            current = _holder(
                conn.execute(
                    f"SELECT {_COLUMNS} FROM run_leases WHERE run_id = ?", (self.run_id,)
                ).fetchone()
            )
            if current is not None and current.token != self.token:
                if not is_stale(current, now=now, stale_after_s=self.stale_after_s):
                    raise LeaseHeldError(
                        f"run {self.run_id} in {self.store.path} is being written by "
                        f"{current.describe()} (last heartbeat {max(0.0, now - current.heartbeat):.0f} s "
                        "ago); wait for it to finish or stop it, then run the same command again "
                        f"(a lease silent for {self.stale_after_s:g} s is taken over)"
                    )
                self.taken_over = current
            conn.execute(
                _REPLACE,
                (self.run_id, os.getpid(), this_host(), self.token, since, now),
            )
        self.held = True
        if self.taken_over is not None and self.note is not None:
            print(
                f"persona-collapse: took over the stale lease of run {self.run_id} "
                f"({self.taken_over.describe()})",
                file=self.note,
                flush=True,
            )
        return self

    def beat(self) -> None:
        """Refresh the heartbeat; raises :class:`LeaseHeldError` when the lease was taken over."""
        with self.store.connection() as conn:
            updated = conn.execute(
                "UPDATE run_leases SET heartbeat = ? WHERE run_id = ? AND token = ?",
                (time.time(), self.run_id, self.token),
            ).rowcount
        if updated == 0:
            self.held = False
            raise LeaseHeldError(
                f"run {self.run_id} in {self.store.path} was taken over by another writer "
                "(this one's heartbeat went silent); what arrived is stored: run the same "
                "command again when the other writer has finished"
            )

    async def keep_while(self, work: Awaitable[T]) -> T:
        """Await ``work``, refreshing the heartbeat every ``heartbeat_s`` seconds meanwhile.

        When the lease is lost the work is cancelled and :class:`LeaseHeldError` raised.
        """
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.heartbeat_s)
                if task in done:
                    return task.result()
                self.beat()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def release(self) -> None:
        """Give the lease up (only this holding's row; nothing when not held)."""
        if not self.held:
            return
        self.held = False
        with self.store.connection() as conn:
            conn.execute(
                "DELETE FROM run_leases WHERE run_id = ? AND token = ?", (self.run_id, self.token)
            )

    def __enter__(self) -> RunLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

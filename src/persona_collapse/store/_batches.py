"""The batch ledger: provider batches of ``run --batch`` and each unstored slot's progress.

``batch_jobs`` holds every batch a run created (its provider id, round, state
and the custom ids it holds), written the moment the provider accepted it: a
run that is killed and started again finds its in-flight batches here and
adopts them instead of paying for them twice. A batch whose results were read
and stored is marked ``read``. ``batch_slots`` keeps, for each slot not yet
stored, the next protocol attempt, the failed attempts, the transport faults
and the tokens so far (an open :class:`~persona_collapse.protocol.SlotState`),
so the protocol continues where it stopped across rounds and processes. Both tables are declared in ``_schema.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol import SlotState
from ._clock import now_utc
from ._opening import transaction
from ._schema import BATCH_JOB_COLUMNS, BATCH_SLOT_COLUMNS, insert_sql

if TYPE_CHECKING:
    from ._sqlite import ResponseStore

READ_STATE = "read"
"""State of a batch whose results were read and stored (nothing more to do)."""

PENDING_STATE = "pending"
"""State of a row written just before the provider's create call; its ``batch_id``
is :data:`PENDING_PREFIX` + ``file:<input file id>`` (OpenAI: the uploaded input
file, which names the batch) or ``new:<random>`` (Anthropic: nothing names it but
the request count and the row's ``created`` time). A restart resolves it against
the provider's batch list before creating anything."""

PENDING_PREFIX = "pending:"

SlotKey = tuple[int, int, int]


@dataclass(frozen=True)
class BatchJob:
    """A row of ``batch_jobs``."""

    run_id: str
    batch_id: str
    provider: str
    round: int
    state: str
    custom_ids: tuple[str, ...]
    created: str = ""
    updated: str = ""


class BatchLedger:
    """Reads and writes the batch tables of one store."""

    def __init__(self, store: ResponseStore) -> None:
        self.store = store

    def add_job(self, job: BatchJob) -> None:
        """Record a batch the provider accepted (state as the provider said)."""
        now = now_utc()
        with self.store.connection() as conn:
            conn.execute(
                insert_sql("batch_jobs", BATCH_JOB_COLUMNS, "REPLACE"),
                (
                    job.run_id,
                    job.batch_id,
                    job.provider,
                    job.round,
                    job.state,
                    len(job.custom_ids),
                    json.dumps(list(job.custom_ids)),
                    now,
                    now,
                ),
            )

    def add_pending(
        self, run_id: str, provider: str, round_no: int, key: str, custom_ids: tuple[str, ...]
    ) -> BatchJob:
        """Record, before the create call, a batch about to be created (see :data:`PENDING_STATE`)."""
        job = BatchJob(run_id, PENDING_PREFIX + key, provider, round_no, PENDING_STATE, custom_ids)
        self.add_job(job)
        return job

    def resolve_pending(self, run_id: str, pending_id: str, batch_id: str, state: str) -> None:
        """The provider's id (and state) of the batch a pending row stood for."""
        with self.store.connection() as conn:
            conn.execute(
                "UPDATE batch_jobs SET batch_id = ?, state = ?, updated = ? "
                "WHERE run_id = ? AND batch_id = ?",
                (batch_id, state, now_utc(), run_id, pending_id),
            )

    def drop(self, run_id: str, batch_id: str) -> None:
        """Forget a pending row that matched no provider batch (its slots go to a new round)."""
        with self.store.connection() as conn:
            conn.execute(
                "DELETE FROM batch_jobs WHERE run_id = ? AND batch_id = ?", (run_id, batch_id)
            )

    def known_ids(self) -> set[str]:
        """Every provider batch id in the store (any run): never adopted twice."""
        rows = self.store.select("SELECT batch_id FROM batch_jobs")
        return {r[0] for r in rows if not str(r[0]).startswith(PENDING_PREFIX)}

    def pending_jobs(self, run_id: str) -> list[BatchJob]:
        """Rows written before a create call whose batch id was never stored."""
        return [j for j in self.jobs(run_id) if j.state == PENDING_STATE]

    def set_state(self, run_id: str, batch_id: str, state: str) -> None:
        """The batch's latest state (``read`` once its results are stored)."""
        with self.store.connection() as conn:
            conn.execute(
                "UPDATE batch_jobs SET state = ?, updated = ? WHERE run_id = ? AND batch_id = ?",
                (state, now_utc(), run_id, batch_id),
            )

    def jobs(self, run_id: str) -> list[BatchJob]:
        """Every batch of ``run_id``, oldest round first."""
        rows = self.store.select(
            "SELECT run_id, batch_id, provider, round, state, custom_ids, created, updated "
            "FROM batch_jobs WHERE run_id = ? ORDER BY round, created, batch_id",
            (run_id,),
        )
        return [
            BatchJob(r[0], r[1], r[2], int(r[3]), r[4], tuple(json.loads(r[5])), r[6], r[7])
            for r in rows
        ]

    def open_jobs(self, run_id: str) -> list[BatchJob]:
        """Batches of ``run_id`` whose results were not yet read (in flight, or ended unread)."""
        return [j for j in self.jobs(run_id) if j.state not in (READ_STATE, PENDING_STATE)]

    def progress(self, run_id: str) -> dict[SlotKey, SlotState]:
        """The stored progress of every unstored slot of ``run_id``."""
        rows = self.store.select(
            "SELECT persona_id, item_id, repetition, attempt, failures, faults, "
            "prompt_tokens, completion_tokens, raw_text FROM batch_slots WHERE run_id = ?",
            (run_id,),
        )
        return {
            (int(r[0]), int(r[1]), int(r[2])): SlotState(
                attempt=int(r[3]),
                failures=int(r[4]),
                faults=int(r[5]),
                prompt_tokens=int(r[6]),
                completion_tokens=int(r[7]),
                raw_text=r[8],
            )
            for r in rows
        }

    def save_progress(
        self,
        run_id: str,
        updates: Iterable[tuple[SlotKey, SlotState | None]],
        *,
        read: str | None = None,
    ) -> None:
        """Write (or, for None: delete) the progress of slots, in one transaction; ``read``:
        the batch whose results these are, marked ``read`` in the same transaction (a run
        killed in between would read it again and count its faults twice)."""
        with self.store.connection() as conn, transaction(conn):
            if read is not None:
                conn.execute(
                    "UPDATE batch_jobs SET state = ?, updated = ? WHERE run_id = ? AND batch_id = ?",
                    (READ_STATE, now_utc(), run_id, read),
                )
            for (p, i, r), prog in updates:
                if prog is None:
                    conn.execute(
                        "DELETE FROM batch_slots WHERE run_id = ? AND persona_id = ? "
                        "AND item_id = ? AND repetition = ?",
                        (run_id, p, i, r),
                    )
                    continue
                conn.execute(
                    insert_sql("batch_slots", BATCH_SLOT_COLUMNS, "REPLACE"),
                    (
                        run_id,
                        p,
                        i,
                        r,
                        prog.attempt,
                        prog.failures,
                        prog.faults,
                        prog.prompt_tokens,
                        prog.completion_tokens,
                        prog.raw_text,
                    ),
                )

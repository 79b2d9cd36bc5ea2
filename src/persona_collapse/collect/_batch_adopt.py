"""Adoption after a crash: the batch a killed session created but never stored, found again.

Just before each create call the driver stores an intent (a ``pending`` row of
``batch_jobs``: the request count, the time, the custom ids it is about to send
and, for OpenAI, the uploaded input file's id). A create the provider
definitely refused (:class:`~persona_collapse.backends.BatchNotCreated`) clears
its intent; one that timed out or met a 5xx keeps it, as the provider may have
created the batch. A session started again resolves each intent before
creating anything:

* OpenAI: the batch whose ``input_file_id`` is the stored upload (a file this
  run uploaded: it names the model and the custom ids) and whose metadata,
  where it has any, names this run and round, is adopted; if none is listed it
  is created now from that file.
* Anthropic: the list shows only request counts and times, so a batch with the
  same count created within the window after the intent is a candidate,
  adopted if it is the only one. A candidate is not trusted: its result lines
  are applied only where they name, exactly, a custom id this intent sent, and
  those ids carry a random nonce of this round (see ``_batch_lines``), so a
  batch of another store or run contributes no answer (its lines are ignored
  and counted; the slots are asked again). An intent whose ids carry no nonce
  (a store written before nonces) is never resolved by count and time.

Otherwise one line on stderr says a batch may exist, and the intent's slots go
into a new round.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from datetime import datetime
from functools import partial

from ..backends import BatchAPI, BatchNotCreated
from ..store import PENDING_PREFIX, BatchJob, BatchLedger
from ._batch_lines import has_nonce
from ._batch_reads import retried_read
from ._policy import BackoffPolicy


def batch_metadata(run_id: str, round_no: int) -> dict[str, str]:
    """The metadata every batch of ``run_id`` is created with (OpenAI keeps it; Anthropic none)."""
    return {"persona_collapse_run": run_id, "round": str(round_no)}


async def resolve_pending(
    api: BatchAPI,
    ledger: BatchLedger,
    run_id: str,
    on_created: Callable[[str], None],
    *,
    policy: BackoffPolicy,
    rng: random.Random,
) -> None:
    """Resolve every intent of ``run_id`` (see the module docs); ``on_created`` gets the id of
    each batch created here from a stored upload. Listing the provider's batches is a read:
    a transient failure of it is sent again under ``policy`` (``rng``: its jitter)."""
    known = ledger.known_ids()
    for job in ledger.pending_jobs(run_id):
        kind, _, value = job.batch_id[len(PENDING_PREFIX) :].partition(":")
        prepared = value if kind == "file" else None
        metadata = batch_metadata(run_id, job.round)
        found: list[str] = []
        if prepared is not None or all(has_nonce(c) for c in job.custom_ids):
            since = datetime.fromisoformat(job.created).timestamp() if job.created else 0.0
            listed = await retried_read(
                partial(api.list, prepared, len(job.custom_ids), since, metadata), policy, rng
            )
            found = [f for f in listed if f not in known]
        if prepared is not None and not found:
            try:
                batch_id = await api.submit([], prepared, metadata)
            except BatchNotCreated:
                ledger.drop(run_id, job.batch_id)  # refused: nothing to adopt later
                raise
            ledger.resolve_pending(run_id, job.batch_id, batch_id, "submitted")
            on_created(batch_id)
            known.add(batch_id)
            continue
        if len(found) == 1 or (prepared is not None and found):
            ledger.resolve_pending(run_id, job.batch_id, found[0], "submitted")
            known.add(found[0])
            continue
        ledger.drop(run_id, job.batch_id)
        _say_unresolved(job, len(found))


def _say_unresolved(job: BatchJob, candidates: int) -> None:
    print(
        f"persona-collapse: an earlier session may have created a batch of "
        f"{len(job.custom_ids)} requests at {job.created} that is not in the store "
        f"({candidates} candidates); check the provider's console or "
        "messages.batches.list and cancel it if it is unwanted",
        file=sys.stderr,
    )

"""Anthropic's Message Batches as the ``anthropic/`` backend's batch capability.

The results JSONL is read line by line here, not through the SDK's decoder
(which stops the whole stream at the first bad line): a cut line, a null
``result`` or an unknown result type becomes an :data:`UNREADABLE` item of
that request, and the other lines are still read.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._batch_api import BatchAPI, BatchItem, BatchLimits, BatchSearch, BatchStatus, result_items
from ._types import ChatRequest

if TYPE_CHECKING:
    from ._anthropic import AnthropicBackend

CLOCK_SLACK_S = 5.0
"""Seconds the provider's clock may run behind ours when matching a batch by creation time."""

CREATE_WINDOW_S = 3600.0
"""Seconds after the stored intent within which the batch it stands for was created (a create
call never takes this long): a batch created later is not it."""


class AnthropicBatchAPI(BatchAPI):
    """Message Batches through ``backend``'s client: create, retrieve, results, list, cancel."""

    limits = BatchLimits(100_000, 256 * 1024 * 1024)
    """Anthropic's limits: 100,000 requests and 256 MB per batch."""

    _backend: AnthropicBackend

    def line(self, custom_id: str, request: ChatRequest) -> dict[str, Any]:
        """``{"custom_id", "params"}`` (custom ids: 1-64 of ``[A-Za-z0-9_-]``)."""
        self._backend.refuse_logprobs(request)
        return {"custom_id": custom_id, "params": self._backend.request_body(request)}

    def _create_call(
        self, lines: Sequence[Mapping[str, Any]], prepared: str | None, metadata: Mapping[str, str]
    ) -> Awaitable[Any]:
        """``messages.batches.create`` (metadata is not sent: the API takes none)."""
        return self._client.messages.batches.create(requests=[dict(line) for line in lines])

    async def _candidates(self, search: BatchSearch) -> AsyncIterator[Any]:
        """Batches (``messages.batches.list``, all pages) created within
        :data:`CREATE_WINDOW_S` after ``search.since`` (less :data:`CLOCK_SLACK_S`) holding
        ``search.n_requests`` requests: the list shows no model, metadata or custom ids,
        so a count and a time are all it can match on (``search.metadata`` is unused).
        The driver proves a candidate its own by its result lines' custom ids,
        which carry a random nonce of the batch they were sent in."""
        since = search.since
        async for batch in self._client.messages.batches.list(limit=100):
            counts = batch.request_counts
            total = (
                counts.processing
                + counts.succeeded
                + counts.errored
                + counts.canceled
                + counts.expired
            )
            created = batch.created_at.timestamp()
            window = since - CLOCK_SLACK_S <= created <= since + CREATE_WINDOW_S
            if total == search.n_requests and window:
                yield batch

    async def poll(self, batch_id: str) -> BatchStatus:
        """``messages.batches.retrieve``: ended when ``processing_status`` is ``ended``."""
        batch = await self._call(self._client.messages.batches.retrieve(batch_id))
        counts = batch.request_counts
        done = int(counts.succeeded + counts.errored + counts.canceled + counts.expired)
        total = done + int(counts.processing)
        state = str(batch.processing_status)
        return BatchStatus(batch_id, state, state == "ended", done, total)

    async def results(self, batch_id: str) -> builtins.list[BatchItem]:
        """``messages.batches.results``: succeeded -> 200, errored -> its status, expired or
        canceled -> 0, anything else -> :data:`UNREADABLE`; HTTP 404 (past the 29-day
        retention) raises :class:`ResultsGone`."""
        stream = await self._fetch(self._client.messages.batches.results(batch_id), batch_id)
        try:
            raw: bytes = await self._call(stream.http_response.aread())
        finally:
            await stream.close()
        return result_items(raw.decode("utf-8", errors="replace"), _result_line)

    async def cancel(self, batch_id: str) -> None:
        """``messages.batches.cancel``."""
        await self._call(self._client.messages.batches.cancel(batch_id))


def _result_line(custom_id: str, line: dict[str, Any]) -> BatchItem | None:
    """One line of a Message Batch's results, read (see the module docs; None: unreadable)."""
    result = line.get("result")
    kind = result.get("type") if isinstance(result, dict) else None
    if kind == "succeeded" and isinstance(result, dict):
        message = result.get("message")
        if isinstance(message, dict):
            return BatchItem(custom_id, 200, message)
    elif kind == "errored" and isinstance(result, dict):
        error = result.get("error")
        if isinstance(error, dict):
            inner = error.get("error")
            inner_type = inner.get("type", "") if isinstance(inner, dict) else ""
            status = 400 if inner_type == "invalid_request_error" else 500
            return BatchItem(custom_id, status, error)
    elif kind in ("expired", "canceled"):
        return BatchItem(custom_id, 0, {"type": kind})
    return None

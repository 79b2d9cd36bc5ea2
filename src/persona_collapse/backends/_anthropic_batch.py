"""Anthropic's Message Batches as the ``anthropic/`` backend's batch capability.

The results JSONL is read line by line here, not through the SDK's decoder
(which stops the whole stream at the first bad line): a cut line, a null
``result`` or an unknown result type becomes an :data:`UNREADABLE` item of
that request, and the other lines are still read.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._batch_api import (
    UNREADABLE,
    BatchAPI,
    BatchItem,
    BatchLimits,
    BatchStatus,
    json_object,
    unreadable_line,
)
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

    async def submit(
        self,
        lines: Sequence[Mapping[str, Any]],
        prepared: str | None,
        metadata: Mapping[str, str],
    ) -> str:
        """``messages.batches.create`` (metadata is not sent: the API takes none)."""
        batch = await self._create(
            self._client.messages.batches.create(requests=[dict(line) for line in lines])
        )
        return str(batch.id)

    async def list(
        self,
        prepared: str | None,
        n_requests: int,
        since: float,
        metadata: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Batches (``messages.batches.list``, all pages) created within
        :data:`CREATE_WINDOW_S` after ``since`` (less :data:`CLOCK_SLACK_S`) holding
        ``n_requests`` requests: the list shows no model, metadata or custom ids,
        so a count and a time are all it can match on (``metadata`` is unused).
        The driver proves a candidate its own by its result lines' custom ids,
        which carry a random nonce of the batch they were sent in."""

        async def scan() -> list[str]:
            found: list[str] = []
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
                if total == n_requests and window:
                    found.append(str(batch.id))
            return found

        found: list[str] = await self._call(scan())
        return found

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
        text = raw.decode("utf-8", errors="replace")
        return [_result_line(line) for line in text.splitlines() if line.strip()]

    async def cancel(self, batch_id: str) -> None:
        """``messages.batches.cancel``."""
        await self._call(self._client.messages.batches.cancel(batch_id))


def _result_line(raw: str) -> BatchItem:
    """One line of a Message Batch's results (see the module docs)."""
    line = json_object(raw)
    custom_id = line.get("custom_id") if line is not None else None
    if line is None or not isinstance(custom_id, str) or not custom_id:
        return unreadable_line(raw)
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
    return BatchItem(custom_id, UNREADABLE, None)

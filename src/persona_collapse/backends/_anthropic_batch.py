"""Anthropic's Message Batches as the ``anthropic/`` backend's batch capability."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._batch_api import BatchAPI, BatchItem, BatchLimits, BatchStatus
from ._types import ChatRequest, ChatResult

if TYPE_CHECKING:
    from ._anthropic import AnthropicBackend

CLOCK_SLACK_S = 5.0
"""Seconds the provider's clock may run behind ours when matching a batch by creation time."""


class AnthropicBatchAPI(BatchAPI):
    """Message Batches through ``backend``'s client: create, retrieve, results, list, cancel."""

    def __init__(self, backend: AnthropicBackend) -> None:
        super().__init__(backend.failure)
        self._backend = backend
        self._client = backend._client

    @property
    def limits(self) -> BatchLimits:
        """Anthropic's limits: 100,000 requests and 256 MB per batch."""
        return BatchLimits(100_000, 256 * 1024 * 1024)

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
        batch = await self._call(
            self._client.messages.batches.create(requests=[dict(line) for line in lines])  # type: ignore[misc]
        )
        return str(batch.id)

    async def list(self, prepared: str | None, n_requests: int, since: float) -> list[str]:
        """Batches (``messages.batches.list``, all pages) created at or after ``since``
        (less :data:`CLOCK_SLACK_S`) holding ``n_requests`` requests: the API keeps
        no metadata, so a count and a time are all a restart can match on."""

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
                if total == n_requests and created >= since - CLOCK_SLACK_S:
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
        """``messages.batches.results``: succeeded -> 200, errored -> its status, else 0."""
        stream = await self._call(self._client.messages.batches.results(batch_id))
        items: list[BatchItem] = []
        async for entry in stream:
            result = entry.result
            kind = result.type
            if kind == "succeeded":
                items.append(BatchItem(entry.custom_id, 200, result.message.model_dump()))
            elif kind == "errored":
                error = result.error.model_dump()
                inner = (error.get("error") or {}).get("type", "")
                status = 400 if inner == "invalid_request_error" else 500
                items.append(BatchItem(entry.custom_id, status, error))
            else:  # expired, canceled
                items.append(BatchItem(entry.custom_id, 0, {"type": kind}))
        return items

    def read(self, item: BatchItem, request: ChatRequest) -> ChatResult:
        """The answer of one result line, judged as the same direct answer would be."""
        return self._backend.read_batch_item(item, request)

    async def cancel(self, batch_id: str) -> None:
        """``messages.batches.cancel``."""
        await self._call(self._client.messages.batches.cancel(batch_id))

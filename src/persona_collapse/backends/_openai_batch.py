"""OpenAI's Batch API (``/v1/files`` + ``/v1/batches``) as the ``openai/`` backend's capability."""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._batch_api import BatchAPI, BatchItem, BatchLimits, BatchSearch, BatchStatus, result_items
from ._decisions import sdk_field as _field
from ._types import ChatRequest

if TYPE_CHECKING:
    from ._openai import OpenAIBackend

ENDED_STATES = ("completed", "failed", "expired", "cancelled")
"""Batch states after which nothing changes any more."""


class OpenAIBatchAPI(BatchAPI):
    """The Batch API through ``backend``'s client: JSONL upload, create, retrieve, list, cancel."""

    limits = BatchLimits(50_000, 200 * 1024 * 1024)
    """OpenAI's limits: 50,000 requests and 200 MB of input file per batch."""

    _backend: OpenAIBackend

    def line(self, custom_id: str, request: ChatRequest) -> dict[str, Any]:
        """``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``."""
        body = self._backend.request_body(request)
        body.pop("timeout", None)
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": body,
        }

    async def prepare(self, lines: Sequence[Mapping[str, Any]]) -> str | None:
        """Upload the JSONL (``files.create``, purpose batch); returns the input file's id,
        stored before :meth:`submit` so a run killed in between finds its batch by it."""
        data = "".join(_json_line(line) for line in lines)
        upload = await self._call(
            self._client.files.create(
                file=("batch.jsonl", data.encode("utf-8"), "application/jsonl"), purpose="batch"
            )
        )
        return str(upload.id)

    def _create_call(
        self, lines: Sequence[Mapping[str, Any]], prepared: str | None, metadata: Mapping[str, str]
    ) -> Awaitable[Any]:
        """``batches.create`` from the uploaded input file ``prepared``, with ``metadata``."""
        return self._client.batches.create(
            input_file_id=str(prepared),
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata=dict(metadata),
        )

    async def _candidates(self, search: BatchSearch) -> AsyncIterator[Any]:
        """Every batch (``batches.list``, all pages) whose ``input_file_id`` is
        ``search.prepared`` (the file this run uploaded: it names the model and the custom ids
        sent) and whose metadata, where it has any, agrees with ``search.metadata``."""
        if search.prepared is None:
            return
        async for batch in self._client.batches.list(limit=100):
            theirs = dict(batch.metadata or {})
            if batch.input_file_id == search.prepared and all(
                theirs.get(k, v) == v for k, v in search.metadata.items()
            ):
                yield batch

    async def poll(self, batch_id: str) -> BatchStatus:
        """``batches.retrieve``: ended when completed, failed, expired or cancelled."""
        batch = await self._call(self._client.batches.retrieve(batch_id))
        counts = batch.request_counts
        done = int((counts.completed + counts.failed) if counts is not None else 0)
        total = int(counts.total if counts is not None else 0)
        state = str(batch.status)
        return BatchStatus(batch_id, state, state in ENDED_STATES, done, total)

    async def results(self, batch_id: str) -> builtins.list[BatchItem]:
        """The output and error files' lines (``files.content``); none for a failed batch.

        A file answering 404 (past the 30-day retention, or deleted) raises
        :class:`ResultsGone`; an unreadable line is an :data:`UNREADABLE` item.
        """
        batch = await self._call(self._client.batches.retrieve(batch_id))
        items: list[BatchItem] = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._fetch(self._client.files.content(file_id), batch_id)
            items += result_items(content.text, _result_line)
        return items

    async def cancel(self, batch_id: str) -> None:
        """``batches.cancel``."""
        await self._call(self._client.batches.cancel(batch_id))


def _json_line(line: Mapping[str, Any]) -> str:
    """One JSONL line of the input file (compact, newline-terminated)."""
    return json.dumps(line, separators=(",", ":")) + "\n"


def _result_line(custom_id: str, line: dict[str, Any]) -> BatchItem | None:
    """One line of an output or error file, read.

    ``response`` with an integer ``status_code``: that status and its body; no
    response but an ``error`` (expired, cancelled): status 0; anything else
    (``response`` and ``error`` both null, a status that is no number): None,
    an :data:`UNREADABLE` item (as is a cut line or one without a custom id, see
    :func:`result_items`).
    """
    response = _field(line, "response")
    if response is None:
        error = _field(line, "error")
        return None if error is None else BatchItem(custom_id, 0, error)
    status = _field(response, "status_code")
    if not isinstance(status, int) or isinstance(status, bool):
        return None
    return BatchItem(custom_id, status, _field(response, "body"))

"""The optional batch capability: a provider's batch API, offered as ``backend.batch``.

A backend whose provider has a batch API (``openai/`` Batch API, ``anthropic/``
Message Batches) answers ``backend.batch`` with a :class:`BatchAPI`; every other
backend answers None, and ``run --batch`` refuses it. The batch driver
(:class:`persona_collapse.collect.BatchCollector`) submits, polls, reads,
lists and cancels through this object and nothing else.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._types import BackendError, ChatRequest, ChatResult


@dataclass(frozen=True)
class BatchLimits:
    """The most requests and bytes (of JSONL) one provider batch may hold."""

    max_requests: int
    max_bytes: int


@dataclass(frozen=True)
class BatchStatus:
    """Where a provider batch stands.

    ``state``: the provider's word (``validating``, ``in_progress``, ``ended``,
    ``completed``, ``failed``, ``expired``, ...); ``ended``: no more change will
    come (results, if any, can be read); ``done``/``total``: requests finished
    and requested so far (as the provider counts them).
    """

    batch_id: str
    state: str
    ended: bool
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class BatchItem:
    """One result line of a batch: the HTTP ``status`` the request would have had and its body.

    ``status`` 0: the request was never answered (expired, cancelled, a failed
    batch); ``body``: the answer (status 200) or the error object.
    """

    custom_id: str
    status: int
    body: Any


class BatchAPI(ABC):
    """One provider's batch API, bound to the backend (its client, key and model) that offers it.

    Errors are raised as :class:`~persona_collapse.backends.BackendError` with
    the decision the same failure gets on a direct request (``Retry`` for
    429/5xx/timeouts, ``Fatal`` for a rejected key or an unknown model):
    ``failure`` turns the client's exception into that error.
    """

    def __init__(self, failure: Callable[[BaseException], BackendError]) -> None:
        self._failure = failure

    async def _call(self, coro: Awaitable[Any]) -> Any:
        """Await one provider call; its exception becomes the backend's :class:`BackendError`."""
        try:
            return await coro
        except BackendError:
            raise
        except Exception as exc:
            raise self._failure(exc) from None

    @property
    @abstractmethod
    def limits(self) -> BatchLimits:
        """Size limits of one batch (requests, bytes of JSONL)."""

    @abstractmethod
    def line(self, custom_id: str, request: ChatRequest) -> dict[str, Any]:
        """One JSON-able request line of a batch, named ``custom_id``."""

    async def prepare(self, lines: Sequence[Mapping[str, Any]]) -> str | None:
        """What must exist before the batch is created, as a key a restart can match on.

        Default: None, nothing to prepare (Anthropic's Message Batches); OpenAI
        uploads the input file first.
        """
        return None

    @abstractmethod
    async def submit(
        self,
        lines: Sequence[Mapping[str, Any]],
        prepared: str | None,
        metadata: Mapping[str, str],
    ) -> str:
        """Create one batch of ``lines`` (after :meth:`prepare`); returns its id."""

    @abstractmethod
    async def list(self, prepared: str | None, n_requests: int, since: float) -> list[str]:
        """Ids of provider batches that may be the one a killed run created before storing it.

        ``prepared``: :meth:`prepare`'s key; ``n_requests``: the batch's request
        count; ``since``: Unix time (seconds) stored just before the create call.
        """

    @abstractmethod
    async def poll(self, batch_id: str) -> BatchStatus:
        """Where batch ``batch_id`` stands."""

    @abstractmethod
    async def results(self, batch_id: str) -> builtins.list[BatchItem]:
        """Every result line of an ended batch."""

    @abstractmethod
    def read(self, item: BatchItem, request: ChatRequest) -> ChatResult:
        """The answer of one result line, or :class:`BackendError` as for a direct request."""

    @abstractmethod
    async def cancel(self, batch_id: str) -> None:
        """Ask the provider to cancel batch ``batch_id`` (answers already made stay readable)."""

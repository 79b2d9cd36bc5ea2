"""The optional batch capability: a provider's batch API, offered as ``backend.batch``.

A backend whose provider has a batch API (``openai/`` Batch API, ``anthropic/``
Message Batches) answers ``backend.batch`` with a :class:`BatchAPI`; every other
backend answers None, and ``run --batch`` refuses it. The batch driver
(:class:`persona_collapse.collect.BatchCollector`) submits, polls, reads,
lists and cancels through this object and nothing else.

Result lines are read leniently: a line that cannot be read (cut JSON, a null
result) becomes a :class:`BatchItem` of status :data:`UNREADABLE` (its custom id
recovered from the raw text where it can be), never an exception; the driver
treats it as a transport fault of that request. Results past the provider's
retention (HTTP 404 on the output file or results URL) raise
:class:`ResultsGone`; a create call the provider definitely refused (a 4xx
other than 408) raises :class:`BatchNotCreated`.
"""

from __future__ import annotations

import builtins
import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._types import BackendError, ChatRequest, ChatResult

if TYPE_CHECKING:
    from ._sdk import SDKBackend

UNREADABLE = -1
""":attr:`BatchItem.status` of a result line that could not be read (cut JSON, a null
result, a field of the wrong type): a transport fault of its request."""

_CUSTOM_ID_IN_TEXT = re.compile(r'"custom_id"\s*:\s*"([A-Za-z0-9_-]{1,64})"')


class ResultsGone(Exception):
    """The results of an ended batch answer HTTP 404: past the provider's retention (or deleted)."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(
            f"the results of batch {batch_id} are no longer available (HTTP 404: past the "
            "provider's retention, or deleted)"
        )
        self.batch_id = batch_id


class BatchNotCreated(BackendError):
    """A create call the provider answered with a definite refusal (a 4xx other than 408):
    no batch exists, so nothing may be adopted for it later."""


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries (None: no response came back)."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def unreadable_line(raw: str) -> BatchItem:
    """A result line that could not be read: status :data:`UNREADABLE`, the custom id found in
    the raw text (or ``""``)."""
    found = _CUSTOM_ID_IN_TEXT.search(raw)
    return BatchItem(found[1] if found else "", UNREADABLE, None)


def json_object(raw: str) -> dict[str, Any] | None:
    """``raw`` as a JSON object (None: not JSON, or not an object)."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


ReadLine = Callable[[str, dict[str, Any]], "BatchItem | None"]
"""A provider's reader of one result line: ``(custom_id, line)`` -> its item, or None when the
line says nothing it can read (an :data:`UNREADABLE` item of that custom id)."""


def result_items(text: str, read: ReadLine) -> list[BatchItem]:
    """Every non-blank line of a results JSONL ``text`` as a :class:`BatchItem`.

    A line that is no JSON object, or has no custom id (a non-empty string), is
    :data:`UNREADABLE` (:func:`unreadable_line`); ``read(custom_id, line)`` reads any other.
    """
    return [_result_item(raw, read) for raw in text.splitlines() if raw.strip()]


def _result_item(raw: str, read: ReadLine) -> BatchItem:
    line = json_object(raw)
    custom_id = line.get("custom_id") if line is not None else None
    if line is None or not isinstance(custom_id, str) or not custom_id:
        return unreadable_line(raw)
    item = read(custom_id, line)
    return BatchItem(custom_id, UNREADABLE, None) if item is None else item


@dataclass(frozen=True)
class BatchSearch:
    """What :meth:`BatchAPI.list` looks for: the batch a killed run may have created.

    ``prepared``: :meth:`BatchAPI.prepare`'s key (None: nothing prepared);
    ``n_requests``: the batch's request count; ``since``: Unix time (seconds)
    stored just before the create call; ``metadata``: what :meth:`BatchAPI.submit`
    sent with it.
    """

    prepared: str | None
    n_requests: int
    since: float
    metadata: Mapping[str, str]


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
    batch); :data:`UNREADABLE`: the line could not be read; ``body``: the answer
    (status 200) or the error object.
    """

    custom_id: str
    status: int
    body: Any


class BatchAPI(ABC):
    """One provider's batch API, bound to the backend (its client, key and model) that offers it.

    Errors are raised as :class:`~persona_collapse.backends.BackendError` with
    the decision the same failure gets on a direct request (``Retry`` for
    429/5xx/timeouts, ``Fatal`` for a rejected key or an unknown model): the
    backend's ``failure`` turns the client's exception into that error, and
    its ``read_batch_item`` judges each result line as a direct answer.
    """

    def __init__(self, backend: SDKBackend) -> None:
        self._backend = backend
        self._client: Any = backend._client
        self._failure: Callable[[BaseException], BackendError] = backend.failure

    async def _call(
        self,
        coro: Awaitable[Any],
        special: Callable[[Exception], BaseException | None] | None = None,
    ) -> Any:
        """Await one provider call; its exception becomes the one ``special`` makes of it, or
        (``special`` absent or None) the backend's :class:`BackendError`."""
        try:
            return await coro
        except BackendError:
            raise
        except Exception as exc:
            error = special(exc) if special is not None else None
            raise (error if error is not None else self._failure(exc)) from None

    async def _create(self, coro: Awaitable[Any]) -> Any:
        """Await a create call: a definite refusal (a 4xx other than 408) raises
        :class:`BatchNotCreated`."""

        def refused(exc: Exception) -> BaseException | None:
            error = self._failure(exc)
            status = _status_of(exc)
            if status is not None and 400 <= status < 500 and status != 408:
                return BatchNotCreated(error.decision)
            return error

        return await self._call(coro, refused)

    async def _fetch(self, coro: Awaitable[Any], batch_id: str) -> Any:
        """Await a call reading results: HTTP 404 raises :class:`ResultsGone`."""
        return await self._call(
            coro, lambda exc: ResultsGone(batch_id) if _status_of(exc) == 404 else None
        )

    limits: BatchLimits
    """Size limits of one batch (requests, bytes of JSONL): a class attribute of each provider."""

    @abstractmethod
    def line(self, custom_id: str, request: ChatRequest) -> dict[str, Any]:
        """One JSON-able request line of a batch, named ``custom_id``."""

    async def prepare(self, lines: Sequence[Mapping[str, Any]]) -> str | None:
        """What must exist before the batch is created, as a key a restart can match on.

        Default: None, nothing to prepare (Anthropic's Message Batches); OpenAI
        uploads the input file first.
        """
        return None

    async def submit(
        self,
        lines: Sequence[Mapping[str, Any]],
        prepared: str | None,
        metadata: Mapping[str, str],
    ) -> str:
        """Create one batch of ``lines`` (after :meth:`prepare`, run now where ``prepared`` is
        None) with the provider's create call (:meth:`_create_call`); returns its id. A
        definite refusal raises :class:`BatchNotCreated`."""
        if prepared is None:
            prepared = await self.prepare(lines)
        batch = await self._create(self._create_call(lines, prepared, metadata))
        return str(batch.id)

    def _create_call(
        self, lines: Sequence[Mapping[str, Any]], prepared: str | None, metadata: Mapping[str, str]
    ) -> Awaitable[Any]:
        """The provider's create call of :meth:`submit`, not yet awaited (override this, or
        :meth:`submit`)."""
        raise NotImplementedError

    async def list(
        self,
        prepared: str | None,
        n_requests: int,
        since: float,
        metadata: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Ids of provider batches that may be the one a killed run created before storing it.

        ``prepared``: :meth:`prepare`'s key; ``n_requests``: the batch's request
        count; ``since``: Unix time (seconds) stored just before the create call;
        ``metadata``: what :meth:`submit` sent with it (a batch whose metadata
        says otherwise is not it). Candidates only (:meth:`_candidates`): the driver
        still checks each result line's custom id against the ids this run sent.
        """
        search = BatchSearch(prepared, n_requests, since, dict(metadata or {}))

        async def scan() -> builtins.list[str]:
            return [str(batch.id) async for batch in self._candidates(search)]

        found: builtins.list[str] = await self._call(scan())
        return found

    def _candidates(self, search: BatchSearch) -> AsyncIterator[Any]:
        """The provider's batches (every page of its listing) that may be the one ``search``
        describes (override this, or :meth:`list`)."""
        raise NotImplementedError

    @abstractmethod
    async def poll(self, batch_id: str) -> BatchStatus:
        """Where batch ``batch_id`` stands."""

    @abstractmethod
    async def results(self, batch_id: str) -> builtins.list[BatchItem]:
        """Every result line of an ended batch (:class:`ResultsGone` when they answer 404)."""

    def read(self, item: BatchItem, request: ChatRequest) -> ChatResult:
        """The answer of one result line, judged as the same direct answer would be (or
        :class:`BackendError` as for a direct request)."""
        return self._backend.read_batch_item(item, request)

    @abstractmethod
    async def cancel(self, batch_id: str) -> None:
        """Ask the provider to cancel batch ``batch_id`` (answers already made stay readable)."""

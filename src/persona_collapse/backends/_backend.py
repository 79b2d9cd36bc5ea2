"""The backend contract: one base class with documented defaults.

Every model client subclasses :class:`Backend` and implements
:meth:`Backend.complete`; everything else has a default here that a backend
overrides only when it knows better. Callers use the attributes directly
(``await backend.check()``, ``backend.preferred_concurrency``) and never probe
with ``getattr``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._types import BackendError, ChatRequest, ChatResult, Fatal, ModelSpec

#: Requests a backend keeps in flight when it states no preference (the runner's
#: starting concurrency window).
DEFAULT_CONCURRENCY = 8


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


class Backend(ABC):
    """A model client; make one with :func:`persona_collapse.backends.create_backend`.

    Attributes:
        spec: The parsed model name (``family/model-name``) this backend answers for.

    Defaults, and the backends that override them:

    * :attr:`supports_logprobs` -- ``False``. True for the OpenAI-compatible,
      simulated, ``hf/``, ``vllm/`` and ``tinker/`` backends; Anthropic keeps
      the default (its API returns no logprobs).
    * :attr:`preferred_concurrency` -- :data:`DEFAULT_CONCURRENCY` (8) requests
      in flight. ``hf/`` says one full batch (32 unless configured), ``vllm/``
      one full batch (256 unless configured).
    * :attr:`simulated` -- ``False``. ``sim/`` says ``True``: its data are not
      answers of any language model.
    * :attr:`secrets` -- ``()``. The SDK backends (OpenAI-compatible, Anthropic)
      name their API key, so every message can be redacted of it.
    * :meth:`check` -- nothing to check (returns at once). The SDK backends
      send one cheap real request; local and simulated backends keep the
      default because they were made ready when constructed.
    * :meth:`describe` -- ``spec.full`` (with ``[SIMULATED]`` appended when
      :attr:`simulated`). Every built-in backend overrides it with a line
      naming its server or device; ``sim/`` says SIMULATED in it.
    * :attr:`supports_batch` -- ``False``: no provider batch API, ``run --batch``
      refuses the backend. ``openai/`` (and OpenAI-compatible servers with
      ``/v1/files`` and ``/v1/batches``, named ``openai/`` with ``--base-url``)
      and ``anthropic/`` (Message Batches) say ``True`` and implement
      :meth:`batch_line`, :meth:`batch_submit`, :meth:`batch_status`,
      :meth:`batch_results` and :meth:`read_batch_item`; the defaults raise a
      :class:`Fatal` :class:`BackendError`.
    * :meth:`aclose` -- nothing to release. The SDK backends close their HTTP
      client, ``hf/`` and ``vllm/`` stop their batch worker, ``tinker/`` ends
      its session.

    :meth:`complete` has no default.
    """

    spec: ModelSpec

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @property
    def supports_logprobs(self) -> bool:
        """Whether :meth:`complete` honours ``ChatRequest.top_logprobs`` (default ``False``)."""
        return False

    @property
    def preferred_concurrency(self) -> int:
        """Requests worth keeping in flight at once (default :data:`DEFAULT_CONCURRENCY`)."""
        return DEFAULT_CONCURRENCY

    @property
    def simulated(self) -> bool:
        """Whether the answers are SIMULATED rather than a language model's (default ``False``)."""
        return False

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings (API keys) that must never appear in a message or log (default none)."""
        return ()

    @property
    def supports_batch(self) -> bool:
        """Whether the provider has a batch API this backend drives (default ``False``)."""
        return False

    @property
    def batch_limits(self) -> BatchLimits:
        """Size limits of one batch (default: none usable; see :attr:`supports_batch`)."""
        return BatchLimits(0, 0)

    def _no_batch(self) -> BackendError:
        return BackendError(Fatal(f"{self.spec.full} has no batch API; run without --batch"))

    def batch_line(self, custom_id: str, request: ChatRequest) -> dict[str, Any]:
        """One JSON-able request line of a batch (default: raises, no batch API)."""
        raise self._no_batch()

    async def batch_submit(
        self, lines: Sequence[Mapping[str, Any]], metadata: Mapping[str, str]
    ) -> str:
        """Create one batch of ``lines``; returns its id (default: raises, no batch API)."""
        raise self._no_batch()

    async def batch_prepare(self, lines: Sequence[Mapping[str, Any]]) -> str | None:
        """What must exist before the batch is created, as a key a restart can match on.

        OpenAI: uploads the JSONL and returns the input file's id (stored before
        :meth:`batch_create`, so a run killed in between finds its batch by it).
        Default: None (nothing to prepare; Anthropic's Message Batches).
        """
        return None

    async def batch_create(
        self,
        lines: Sequence[Mapping[str, Any]],
        prepared: str | None,
        metadata: Mapping[str, str],
    ) -> str:
        """Create one batch of ``lines`` (after :meth:`batch_prepare`); returns its id."""
        return await self.batch_submit(lines, metadata)

    async def batch_find(self, prepared: str | None, n_requests: int, since: float) -> list[str]:
        """Ids of provider batches that may be the one a killed run created before storing it.

        ``prepared``: :meth:`batch_prepare`'s key; ``n_requests``: the batch's
        request count; ``since``: Unix time stored just before the create call.
        Default: raises, no batch API.
        """
        raise self._no_batch()

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """Where batch ``batch_id`` stands (default: raises, no batch API)."""
        raise self._no_batch()

    async def batch_results(self, batch_id: str) -> list[BatchItem]:
        """Every result line of an ended batch (default: raises, no batch API)."""
        raise self._no_batch()

    def read_batch_item(self, item: BatchItem, request: ChatRequest) -> ChatResult:
        """The answer of one result line, or :class:`BackendError` as for a direct request."""
        raise self._no_batch()

    async def check(self, *, timeout_s: float = 30.0) -> None:
        """Make sure the backend can answer before a run starts (default: nothing to check).

        Raises :class:`~persona_collapse.backends.BackendError` with
        :class:`~persona_collapse.backends.Fatal` when it cannot (bad URL, key
        or model). ``timeout_s``: seconds allowed for one probe.
        """
        return None

    def describe(self) -> str:
        """One line about this backend for people; never holds a key (default ``spec.full``)."""
        return f"{self.spec.full} [SIMULATED]" if self.simulated else self.spec.full

    @abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResult:
        """Answer one request or raise :class:`~persona_collapse.backends.BackendError`."""

    async def aclose(self) -> None:
        """Release clients, threads or sessions (default: nothing to release)."""
        return None

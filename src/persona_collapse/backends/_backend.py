"""The backend contract: one base class with documented defaults.

Every model client subclasses :class:`Backend` and implements
:meth:`Backend.complete`; everything else has a default here that a backend
overrides only when it knows better. Callers use the attributes directly
(``await backend.check()``, ``backend.preferred_concurrency``) and never probe
with ``getattr``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ._batch_api import BatchAPI
from ._types import ChatRequest, ChatResult, ModelSpec

#: Requests a backend keeps in flight when it states no preference (the runner's
#: starting concurrency window).
DEFAULT_CONCURRENCY = 8


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
    * :attr:`batch` -- ``None``: no provider batch API, ``run --batch``
      refuses the backend. ``openai/`` (and OpenAI-compatible servers with
      ``/v1/files`` and ``/v1/batches``, named ``openai/`` with ``--base-url``)
      and ``anthropic/`` (Message Batches) answer a :class:`BatchAPI` (submit,
      poll, results, list, cancel).
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
    def batch(self) -> BatchAPI | None:
        """The provider's batch API (:class:`BatchAPI`), or None when it has none (the default)."""
        return None

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

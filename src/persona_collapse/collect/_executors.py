"""Where a session's cells run: one registry of executors, one place that chooses among them.

An executor is chosen by name from the options (:func:`executor_name`:
``ray`` with ``--ray``, ``batch`` with ``--batch``, else ``direct``), refuses
the option combinations it cannot serve or would ignore (:meth:`Executor.refuse`,
a static check run when :class:`RunOptions` is built, before anything is
loaded), and owns the connection: :meth:`Executor.open` makes it offline
(creates the backend client, or imports Ray), :meth:`Executor.connect` reaches
the server or the cluster, :meth:`Executor.close` lets go. Ray sits above this
package (``persona_collapse.distributed``) and is registered by module path,
imported only when a run asks for it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..backends import (
    FAMILIES,
    Backend,
    BackendError,
    Fatal,
    api_key_from_env,
    batch_discount,
    create_backend,
)
from ..errors import ConfigError
from ..instruments import Instrument
from ..store import ResponseStore
from ._batch import DEFAULT_BATCH_POLL_S, DEFAULT_BATCH_TIMEOUT_S, BatchCollector
from ._batch_stats import BatchStats, batch_note
from ._collector import CollectConfig, Collector, CollectStats, Pricing
from ._plan import Slot

if TYPE_CHECKING:
    from ._run_options import RunOptions


class SlotRunner(Protocol):
    """What an executor's :meth:`Executor.collector` returns: ``await run()`` fills the slots;
    ``stop_sending()`` starts nothing new and returns how many answers are still in flight."""

    async def run(self) -> CollectStats: ...

    def stop_sending(self) -> int: ...


@dataclass(frozen=True)
class CollectJob:
    """What every collector is given, whatever the executor: the slots of one run and where
    their answers go.

    ``sink``: the store (answers are committed the moment they arrive); ``personas``:
    persona id -> text (None in self mode); ``price``: for cost figures (None: unknown);
    ``on_update``: called with the live counters after every event.
    """

    sink: ResponseStore
    run_id: str
    instrument: Instrument
    slots: Sequence[Slot]
    config: CollectConfig
    personas: dict[int, str] | None
    price: Pricing | None
    on_update: Callable[[CollectStats], None]
    stats: CollectStats

    def positional(self) -> tuple[ResponseStore, str, Instrument, list[Slot], CollectConfig]:
        """The arguments every collector takes after its backend (or model), in order."""
        return (self.sink, self.run_id, self.instrument, list(self.slots), self.config)

    def keywords(self) -> dict[str, Any]:
        """The keyword arguments the direct and batch collectors take from the job."""
        return {
            "personas": self.personas,
            "price": self.price,
            "on_update": self.on_update,
            "stats": self.stats,
        }


class Executor(ABC):
    """Where a session's cells run (see the module docs); subclasses register with a name."""

    name: ClassVar[str] = ""

    @classmethod
    def refuse(cls, options: RunOptions) -> None:
        """Raise :class:`ConfigError` for options this executor cannot serve or would ignore.

        Static: reads the options only (no file, no import of an extra, no network).
        """
        return None

    @classmethod
    def require(cls, options: RunOptions) -> None:
        """Import the optional dependencies this executor needs (:class:`ConfigError` naming
        the extra when one is missing); run before anything is loaded."""
        return None

    @classmethod
    @abstractmethod
    def open(cls, options: RunOptions) -> Executor:
        """The executor for ``options``, made offline (a missing key or extra fails here)."""

    @property
    @abstractmethod
    def supports_logprobs(self) -> bool:
        """Whether the cells can be asked with the logprob method."""

    @property
    @abstractmethod
    def preferred_concurrency(self) -> int:
        """Requests (or cells per worker call) in flight when ``--concurrency`` is not given."""

    @abstractmethod
    async def connect(self, timeout_s: float) -> None:
        """Reach the server or the cluster once (:class:`ConfigError`, one line, when not)."""

    @abstractmethod
    async def close(self) -> None:
        """Let go of what :meth:`open` and :meth:`connect` took (idempotent)."""

    def new_stats(self) -> CollectStats:
        """The session's counters."""
        return CollectStats()

    @abstractmethod
    def collector(self, job: CollectJob) -> SlotRunner:
        """The runner of ``job``'s slots."""

    def notes(self, stats: CollectStats, *, priced: bool) -> list[str]:
        """Sentences for the session's summary once the collector stopped (default none)."""
        return []


def _family(model: str) -> str:
    return model.strip().partition("/")[0].strip().lower() if "/" in model else ""


def refuse_options_of_batch(options: RunOptions) -> None:
    """``--batch-poll`` / ``--batch-timeout`` do nothing without ``--batch``: refuse any value
    given (the default's included; None means not given)."""
    if options.batch_poll_s is not None:
        raise ConfigError("--batch-poll needs --batch (it sets how often a batch is polled)")
    if options.batch_timeout_s is not None:
        raise ConfigError(
            "--batch-timeout needs --batch (it sets how long a run waits for its batches)"
        )


def refuse_options_of_ray(options: RunOptions) -> None:
    """``--workers`` / ``--gpus-per-worker`` do nothing without ``--ray``: refuse them."""
    if options.workers != 1 or options.gpus_per_worker != 0:
        raise ConfigError("--workers and --gpus-per-worker need --ray ADDRESS (or --ray local)")


class DirectExecutor(Executor):
    """The cells asked from this process through the backend (``run`` without --batch/--ray)."""

    name = "direct"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @classmethod
    def refuse(cls, options: RunOptions) -> None:
        refuse_options_of_ray(options)
        refuse_options_of_batch(options)

    @classmethod
    def open(cls, options: RunOptions) -> Executor:
        return cls(
            create_backend(
                options.model,
                base_url=options.base_url,
                api_key=api_key_from_env(options.api_key_env, option="--api-key-env"),
                api_key_env=options.api_key_env,
                seed=options.seed,
                timeout_s=options.timeout_s,
            )
        )

    @property
    def supports_logprobs(self) -> bool:
        return self.backend.supports_logprobs

    @property
    def preferred_concurrency(self) -> int:
        return self.backend.preferred_concurrency

    async def connect(self, timeout_s: float) -> None:
        try:
            await self.backend.check(timeout_s=timeout_s)
        except BackendError as exc:
            decision = exc.decision
            message = decision.message if isinstance(decision, Fatal) else str(exc)
            raise ConfigError(message) from None

    async def close(self) -> None:
        await self.backend.aclose()

    def collector(self, job: CollectJob) -> SlotRunner:
        return Collector(self.backend, *job.positional(), **job.keywords())


class BatchExecutor(DirectExecutor):
    """The cells asked through the provider's batch API at the batch price (``--batch``)."""

    name = "batch"

    def __init__(
        self, backend: Backend, *, discount: float, poll_s: float, timeout_s: float
    ) -> None:
        super().__init__(backend)
        self.discount = discount
        self.poll_s = poll_s
        self.timeout_s = timeout_s

    @classmethod
    def refuse(cls, options: RunOptions) -> None:
        family = FAMILIES.get(_family(options.model))
        if family is None or not family.batch:
            name = options.model.split("/", 1)[0] if "/" in options.model else options.model
            with_batch = ", ".join(f"{f.name}/" for f in FAMILIES.values() if f.batch)
            raise ConfigError(
                f"--batch needs a provider batch API ({with_batch}); {name}/ has none: "
                "run without --batch"
            )
        refuse_options_of_ray(options)

    @classmethod
    def open(cls, options: RunOptions) -> Executor:
        direct = DirectExecutor.open(options)
        assert isinstance(direct, DirectExecutor)
        if direct.backend.batch is None:
            raise ConfigError(f"{options.model} has no batch API; run without --batch")
        return cls(
            direct.backend,
            discount=batch_discount(options.model) or 1.0,
            poll_s=DEFAULT_BATCH_POLL_S if options.batch_poll_s is None else options.batch_poll_s,
            timeout_s=(
                DEFAULT_BATCH_TIMEOUT_S
                if options.batch_timeout_s is None
                else options.batch_timeout_s
            ),
        )

    def new_stats(self) -> CollectStats:
        return BatchStats()

    def collector(self, job: CollectJob) -> SlotRunner:
        assert isinstance(job.stats, BatchStats)
        return BatchCollector(
            self.backend,
            *job.positional(),
            discount=self.discount,
            poll_s=self.poll_s,
            timeout_s=self.timeout_s,
            **job.keywords(),
        )

    def notes(self, stats: CollectStats, *, priced: bool) -> list[str]:
        assert isinstance(stats, BatchStats)
        return [batch_note(stats, priced=priced)]


_Target = type[Executor] | str
_EXECUTORS: dict[str, tuple[_Target, str | None]] = {}


def register_executor(name: str, target: _Target, *, extra: str | None = None) -> None:
    """Register an executor class, or ``"package.module:Class"`` imported on first use.

    ``extra``: the optional dependency group the lazy import needs (named in the
    error when it is missing).
    """
    _EXECUTORS[name] = (target, extra)


def executor_class(name: str) -> type[Executor]:
    """The executor class registered as ``name`` (a lazy one is imported now)."""
    try:
        target, extra = _EXECUTORS[name]
    except KeyError:
        raise ConfigError(f"unknown executor {name!r}; known: {', '.join(_EXECUTORS)}") from None
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            target = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            hint = f": pip install 'persona-collapse[{extra}]'" if extra else ""
            raise ConfigError(
                f"--{name} needs the {extra or name} extra ({exc.name or module} is not "
                f"installed){hint}"
            ) from None
        assert isinstance(target, type) and issubclass(target, Executor)
        _EXECUTORS[name] = (target, extra)
    return target


def executor_name(options: RunOptions) -> str:
    """The executor ``options`` choose: ``ray`` (``--ray``), ``batch`` (``--batch``) or ``direct``."""
    if options.ray is not None:
        return "ray"
    return "batch" if options.batch else "direct"


def _refuse_method(options: RunOptions) -> None:
    """The logprob method at a family whose API returns no logprobs (Anthropic's)."""
    family = FAMILIES.get(_family(options.model))
    if options.protocol.method == "logprobs" and family is not None and not family.logprobs:
        raise ConfigError(f"{options.model} returns no logprobs; use --method sample")


def refuse_impossible(options: RunOptions) -> None:
    """Raise :class:`ConfigError` for options no executor can serve (nothing is loaded)."""
    executor_class(executor_name(options)).refuse(options)
    _refuse_method(options)


def open_executor(options: RunOptions) -> Executor:
    """The executor ``options`` choose, opened (see :meth:`Executor.open`)."""
    executor = executor_class(executor_name(options)).open(options)
    if options.protocol.method == "logprobs" and not executor.supports_logprobs:
        raise ConfigError(f"{options.model} returns no logprobs; use --method sample")
    return executor


register_executor(DirectExecutor.name, DirectExecutor)
register_executor(BatchExecutor.name, BatchExecutor)
register_executor("ray", "persona_collapse.distributed:RayExecutor", extra="ray")

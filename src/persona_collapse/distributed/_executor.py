"""What :func:`persona_collapse.collect.run_collection` needs to run a session on Ray.

:class:`RayExecutor` hands the session a stand-in backend (:class:`RayBackend`:
the driver loads no model; ``check`` connects to the cluster, ``aclose``
disconnects when the session started Ray), the stats with per-worker
throughput (:class:`._stats.RayStats`), and a :class:`._collector.RayCollector`
in place of the single-process collector.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..backends import Backend, BackendError, ChatRequest, ChatResult, Fatal, parse_model
from ..backends.local import import_vllm
from ..collect import CollectConfig, CollectStats, Executor, Slot
from ..errors import ConfigError
from ..instruments import Instrument
from ..store import ResponseStore
from ._collector import RayCollector
from ._ray_import import connect, import_ray
from ._stats import RayStats

__all__ = ["RAY_FAMILIES", "RayBackend", "RayExecutor"]

#: Model families a Ray run serves: local replicas, one per worker.
RAY_FAMILIES = ("hf", "vllm")


class RayBackend(Backend):
    """The driver's stand-in for the replicas on the Ray workers (answers nothing itself)."""

    def __init__(self, model: str, address: str, workers: int, gpus_per_worker: float) -> None:
        super().__init__(parse_model(model))
        self.address = address
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self._started = False

    @property
    def supports_logprobs(self) -> bool:
        return True

    @property
    def preferred_concurrency(self) -> int:
        """Cells per call to a worker (one full local batch: hf 32, vllm 256)."""
        return 256 if self.spec.family == "vllm" else 32

    def describe(self) -> str:
        gpus = f", {self.gpus_per_worker:g} GPU each" if self.gpus_per_worker else ", CPU"
        return f"{self.spec.full} on Ray ({self.address}, {self.workers} workers{gpus})"

    async def check(self, *, timeout_s: float = 30.0) -> None:
        """Connect to the cluster (``local``: start Ray here)."""
        try:
            self._started = connect(self.address)
        except ConfigError as exc:
            raise BackendError(Fatal(exc.message)) from None

    async def complete(self, request: ChatRequest) -> ChatResult:
        raise BackendError(Fatal("a Ray run is answered by its workers, not by the driver"))

    async def aclose(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


class RayExecutor(Executor):
    """Runs a session's cells on Ray: ``--ray ADDRESS --workers N --gpus-per-worker G``.

    Checks on construction, before the store is touched: the family is
    ``hf/`` or ``vllm/`` (a local replica), Ray is installed, and for
    ``vllm/`` vLLM too (the driver needs it to build the engine actors).
    ``crash_after``/``crash_flag``: fault injection for tests (a worker exits
    once after that many batches; see :class:`._worker.CellWorker`).
    """

    def __init__(
        self,
        model: str,
        address: str,
        *,
        workers: int = 1,
        gpus_per_worker: float = 0.0,
        crash_after: int | None = None,
        crash_flag: str | None = None,
    ) -> None:
        spec = parse_model(model)
        if spec.family not in RAY_FAMILIES:
            raise ConfigError(
                f"--ray runs local replicas of hf/ or vllm/ models, not {spec.family}/; "
                "API models are bound by the provider's rate limit, not by a cluster"
            )
        import_ray()
        if spec.family == "vllm":
            import_vllm()
        self.model = model
        self.crash_after = crash_after
        self.crash_flag = crash_flag
        self._backend = RayBackend(model, address, workers, gpus_per_worker)

    @property
    def backend(self) -> RayBackend:
        """The driver's stand-in backend."""
        return self._backend

    def new_stats(self) -> CollectStats:
        return RayStats()

    def collector(
        self,
        backend: Backend,
        sink: ResponseStore,
        run_id: str,
        instrument: Instrument,
        slots: Sequence[Slot],
        config: CollectConfig,
        *,
        personas: Mapping[int, str] | None = None,
        price: object = None,
        on_update: Callable[[CollectStats], None] | None = None,
        stats: CollectStats | None = None,
    ) -> RayCollector:
        """A :class:`RayCollector` with the arguments :class:`Collector` takes."""
        return RayCollector(
            self.model,
            sink,
            run_id,
            instrument,
            slots,
            config,
            workers=self.backend.workers,
            gpus_per_worker=self.backend.gpus_per_worker,
            personas=personas,
            on_update=on_update,
            stats=stats if isinstance(stats, RayStats) else None,
            crash_after=self.crash_after,
            crash_flag=self.crash_flag,
        )

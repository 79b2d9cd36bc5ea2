"""The Ray executor: a session's cells on a Ray cluster (``--ray ADDRESS --workers N``).

:class:`RayExecutor` is registered with :mod:`persona_collapse.collect` by
module path (``ray``); the session chooses it when the options carry
``--ray``. The driver loads no model: :meth:`RayExecutor.connect` joins the
cluster (``local``: starts Ray here), :meth:`RayExecutor.close` shuts Ray down
when the session started it, and :meth:`RayExecutor.collector` hands the
planned cells to a :class:`._collector.RayCollector`, whose counters are
:class:`._stats.RayStats` (per-worker throughput).
"""

from __future__ import annotations

from ..backends import parse_model
from ..backends.local import import_vllm
from ..collect import (
    CollectJob,
    CollectStats,
    Executor,
    RunOptions,
    SlotRunner,
    refuse_options_of_batch,
)
from ..errors import ConfigError
from ._collector import RayCollector
from ._ray_import import connect, import_ray
from ._stats import RayStats

__all__ = ["RAY_FAMILIES", "RayExecutor"]

#: Model families a Ray run serves: local replicas, one per worker.
RAY_FAMILIES = ("hf", "vllm")


def _refuse_family(family: str) -> None:
    if family not in RAY_FAMILIES:
        raise ConfigError(
            f"--ray runs local replicas of hf/ or vllm/ models, not {family}/; "
            "API models are bound by the provider's rate limit, not by a cluster"
        )


def _require(family: str) -> None:
    """Ray (with Ray Data), and vLLM for ``vllm/`` (the driver builds the engine actors)."""
    import_ray()
    if family == "vllm":
        import_vllm()


class RayExecutor(Executor):
    """Runs a session's cells on Ray: ``--ray ADDRESS --workers N --gpus-per-worker G``.

    Checks on construction, before the store is touched: the family is
    ``hf/`` or ``vllm/`` (a local replica), Ray is installed, and for
    ``vllm/`` vLLM too.
    """

    name = "ray"

    def __init__(
        self, model: str, address: str, *, workers: int = 1, gpus_per_worker: float = 0.0
    ) -> None:
        family = parse_model(model).family
        _refuse_family(family)
        _require(family)
        self.model = model
        self.family = family
        self.address = address
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self._started = False

    @classmethod
    def refuse(cls, options: RunOptions) -> None:
        if options.batch:
            raise ConfigError(
                "--ray and --batch exclude each other: --batch asks a provider's batch API, "
                "--ray runs local model replicas"
            )
        if options.base_url is not None:
            raise ConfigError(
                "--ray runs model replicas on the cluster and takes no --base-url; "
                "a server behind --base-url scales by itself"
            )
        refuse_options_of_batch(options)
        _refuse_family(parse_model(options.model).family)

    @classmethod
    def require(cls, options: RunOptions) -> None:
        _require(parse_model(options.model).family)

    @classmethod
    def open(cls, options: RunOptions) -> RayExecutor:
        assert options.ray is not None
        return cls(
            options.model,
            options.ray,
            workers=options.workers,
            gpus_per_worker=options.gpus_per_worker,
        )

    @property
    def supports_logprobs(self) -> bool:
        return True

    @property
    def preferred_concurrency(self) -> int:
        """Cells per call to a worker (one full local batch: hf 32, vllm 256)."""
        return 256 if self.family == "vllm" else 32

    def describe(self) -> str:
        gpus = f", {self.gpus_per_worker:g} GPU each" if self.gpus_per_worker else ", CPU"
        return f"{self.model} on Ray ({self.address}, {self.workers} workers{gpus})"

    async def connect(self, timeout_s: float) -> None:
        """Join the cluster (``local``: start Ray here)."""
        self._started = connect(self.address)

    async def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def new_stats(self) -> CollectStats:
        return RayStats()

    def collector(self, job: CollectJob) -> SlotRunner:
        """A :class:`RayCollector` over the job's slots (its price unused: local models)."""
        return RayCollector(
            self.model,
            *job.positional(),
            workers=self.workers,
            gpus_per_worker=self.gpus_per_worker,
            personas=job.personas,
            on_update=job.on_update,
            stats=job.stats if isinstance(job.stats, RayStats) else None,
        )

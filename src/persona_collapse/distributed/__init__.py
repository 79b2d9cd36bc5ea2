"""Scale-out collection of local models (``hf/``, ``vllm/``) on a Ray cluster.

``persona-collapse run hf/MODEL --ray ADDRESS|local --workers N --gpus-per-worker G``
spreads the cells of a run over a Ray cluster: Ray Data ``map_batches`` over
an actor pool, one model replica per worker (:class:`CellWorker`), each
running the single-process protocol code with the single-process seeds; the
driver commits every answer batch as it returns (the store's single writer).
See ``docs/scale.md``.

* :func:`run_distributed`: :func:`persona_collapse.collect.run_collection` on Ray.
* :class:`RayExecutor`, :class:`RayCollector`, :class:`CellWorker`, :class:`RayStats`:
  the parts (driver stand-in backend, dispatch and commit, the actor, counters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from ..collect import RunOptions, RunOutcome, run_collection
from ..errors import ConfigError
from ._collector import RayCollector
from ._executor import RAY_FAMILIES, RayBackend, RayExecutor
from ._ray_import import LOCAL, connect, import_ray
from ._stats import RayStats, WorkerTally
from ._worker import CellWorker

__all__ = [
    "LOCAL",
    "RAY_FAMILIES",
    "CellWorker",
    "RayBackend",
    "RayCollector",
    "RayExecutor",
    "RayStats",
    "WorkerTally",
    "connect",
    "import_ray",
    "run_distributed",
]


def run_distributed(
    options: RunOptions,
    *,
    stream: TextIO | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> RunOutcome:
    """Collect the run ``options`` describe on the Ray cluster ``options.ray``.

    Same contract as :func:`~persona_collapse.collect.run_collection` (resume,
    top-up, summary, one-line errors); ``options.workers`` replicas, each with
    ``options.gpus_per_worker`` GPUs.
    """
    if options.ray is None:
        raise ConfigError("run_distributed needs --ray ADDRESS (or --ray local)")
    executor = RayExecutor(
        options.model,
        options.ray,
        workers=options.workers,
        gpus_per_worker=options.gpus_per_worker,
    )
    return run_collection(options, stream=stream, on_outcome=on_outcome, executor=executor)

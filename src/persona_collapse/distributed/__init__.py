"""Scale-out collection of local models (``hf/``, ``vllm/``) on a Ray cluster.

``persona-collapse run hf/MODEL --ray ADDRESS|local --workers N --gpus-per-worker G``
spreads the cells of a run over a Ray cluster: Ray Data ``map_batches`` over
an actor pool, one model replica per worker (:class:`CellWorker`), each
running the single-process protocol code with the single-process seeds; the
driver commits every answer batch as it returns (the store's single writer).
See ``docs/scale.md``.

:mod:`persona_collapse.collect` chooses the Ray executor (:class:`RayExecutor`,
registered there by module path) whenever the options carry ``ray``:
:func:`persona_collapse.collect.run_collection` runs it like the others.

* :func:`run_distributed`: :func:`~persona_collapse.collect.run_collection` for
  options that carry ``ray`` (a thin alias kept for existing callers).
* :class:`RayExecutor`, :class:`RayCollector`, :class:`CellWorker`, :class:`RayStats`:
  the parts (connect and close, dispatch and commit, the actor, counters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from ..collect import RunOptions, RunOutcome, run_collection
from ..errors import ConfigError
from ._collector import RayCollector
from ._executor import RAY_FAMILIES, RayExecutor
from ._ray_import import LOCAL, connect, import_ray
from ._stats import RayStats, WorkerTally
from ._worker import WORKER_WRAPPER_ENV, CellWorker, worker_backend

__all__ = [
    "LOCAL",
    "RAY_FAMILIES",
    "WORKER_WRAPPER_ENV",
    "CellWorker",
    "RayCollector",
    "RayExecutor",
    "RayStats",
    "WorkerTally",
    "connect",
    "import_ray",
    "run_distributed",
    "worker_backend",
]


def run_distributed(
    options: RunOptions,
    *,
    stream: TextIO | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> RunOutcome:
    """:func:`~persona_collapse.collect.run_collection` for options with ``ray`` set
    (``options.workers`` replicas, each with ``options.gpus_per_worker`` GPUs)."""
    if options.ray is None:
        raise ConfigError("run_distributed needs --ray ADDRESS (or --ray local)")
    return run_collection(options, stream=stream, on_outcome=on_outcome)

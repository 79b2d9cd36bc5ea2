"""Counters of a distributed run: the single-process ones plus throughput per worker."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..collect import CollectStats

__all__ = ["RayStats", "WorkerTally"]


@dataclass
class WorkerTally:
    """Cells one Ray worker (actor id) returned, and when its first and last batch arrived."""

    cells: int = 0
    batches: int = 0
    first: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)


@dataclass
class RayStats(CollectStats):
    """:class:`CollectStats` plus ``workers`` (per actor id) and ``duplicates``.

    ``duplicates``: rows the store refused because the cell was already stored
    (a batch Ray retried after a worker died, or another writer); the store's
    key keeps the first. The progress line shows cells/s per worker: cells a
    worker returned divided by the time since the run started (seconds).
    """

    workers: dict[str, WorkerTally] = field(default_factory=dict)
    duplicates: int = 0
    first_batch: float | None = None
    """When the first answer batch arrived (``time.monotonic``): the end of start-up."""
    first_batch_cells: int = 0

    def tally(self, worker: str, cells: int) -> None:
        if self.first_batch is None:
            self.first_batch = time.monotonic()
            self.first_batch_cells = cells
        entry = self.workers.setdefault(worker, WorkerTally(first=self.started))
        entry.cells += cells
        entry.batches += 1
        entry.last = time.monotonic()

    def worker_rates(self) -> dict[str, float]:
        """Cells per second of each worker since the run started."""
        elapsed = max(self.elapsed_s, 1e-9)
        return {name: t.cells / elapsed for name, t in sorted(self.workers.items())}

    def steady_rate(self) -> float | None:
        """Cells per second after the first batch (start-up and model loading left out)."""
        if self.first_batch is None:
            return None
        span = (self.finished or time.monotonic()) - self.first_batch
        cells = self.done + self.duplicates - self.first_batch_cells
        return cells / span if span > 0 and cells > 0 else None

    def progress_counts(self) -> str:
        rates = " ".join(f"{name} {rate:.1f}/s" for name, rate in self.worker_rates().items())
        base = super().progress_counts()
        return f"{base} | workers {rates}" if rates else base

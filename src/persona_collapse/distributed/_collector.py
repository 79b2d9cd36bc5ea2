"""The driver side of a distributed run: dispatch the cells, store the answers as they return.

:class:`RayCollector` has the interface of :class:`~persona_collapse.collect.Collector`
(``await run()`` fills the planned slots and returns the stats), so
:func:`persona_collapse.collect.run_collection` runs it in place of the
single-process collector: resume, the run record, the lease and the summary
stay the same. The planned slots (stored ones already left out) become a Ray
Dataset; ``map_batches`` runs :class:`._worker.CellWorker` over an actor pool
(``ActorPoolStrategy(size=workers)``, one model replica per actor, ``num_gpus``
per actor); the driver iterates the output batches (``iter_batches``) and
commits each row the moment its batch arrives, so it stays the store's only
writer. An actor that dies is restarted by Ray and its batch retried: Ray
Data creates its pool actors with ``max_restarts=-1`` and
``max_task_retries=-1`` (restart and retry without limit; passing them to
``map_batches`` is deprecated from Ray 2.60); a row for a cell already stored
is refused by the store's key and counted in ``duplicates``.

Stopping (Ctrl-C, SIGTERM: :meth:`RayCollector.stop_sending`) stops pulling:
the batch the driver is waiting for is still stored, then the reader thread
closes the iterator, which shuts Ray Data's executor down (its actors) while
Ray is still up, so the session's ``ray.shutdown()`` finds nothing running and
nothing re-starts Ray on the way out. The reader is a daemon thread: a forced
stop (a second signal, or the grace period over) never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..collect import CollectConfig, CollectStats, Slot
from ..errors import ConfigError
from ..instruments import Instrument
from ..store import MISSING_RATING, ResponseStore
from ._stats import RayStats
from ._worker import CellWorker, decode_row

__all__ = ["RayCollector", "forwarded_env"]

_FORWARDED = ("PERSONA_COLLAPSE_", "HF_", "TRANSFORMERS_")
_END = object()
"""Put on the queue by the reader thread when it stopped pulling batches."""


def forwarded_env() -> dict[str, str]:
    """The driver's model settings (``PERSONA_COLLAPSE_*``, ``HF_*``) that the actors get too."""
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED)}


class RayCollector:
    """Fills ``slots`` through Ray workers; the interface of :class:`Collector` (see module docs).

    ``workers``: actors in the pool (model replicas); ``gpus_per_worker``: GPUs
    each actor reserves (0: CPU); ``batch_size``: cells per call (default the
    config's concurrency).
    """

    def __init__(
        self,
        model: str,
        sink: ResponseStore,
        run_id: str,
        instrument: Instrument,
        slots: Sequence[Slot],
        config: CollectConfig,
        *,
        workers: int,
        gpus_per_worker: float = 0.0,
        personas: Mapping[int, str] | None = None,
        on_update: Callable[[CollectStats], None] | None = None,
        stats: RayStats | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.model = model
        self.sink = sink
        self.run_id = run_id
        self.instrument = instrument
        self.slots = list(slots)
        self.config = config
        self.workers = int(workers)
        self.gpus_per_worker = float(gpus_per_worker)
        self.personas = dict(personas or {})
        self.on_update = on_update
        self.stats = stats if stats is not None else RayStats()
        self.stats.planned = len(self.slots)
        self.batch_size = int(batch_size or config.concurrency)
        self._halt = threading.Event()

    def dataset(self) -> Any:
        """The Ray Dataset of answers (lazy): planned cells mapped over the actor pool."""
        import ray.data

        logging.getLogger("ray.data").setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run's own display shows progress
        context.print_on_execution_start = False
        cells = [
            {"persona_id": s.persona_id, "item_id": s.item_id, "repetition": s.repetition}
            for s in self.slots
        ]
        blocks = max(1, math.ceil(len(cells) / self.batch_size))
        ds = ray.data.from_items(cells, override_num_blocks=blocks)
        return ds.map_batches(
            CellWorker,
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            fn_constructor_args=(self.model, self.instrument, self.personas, self.config),
            fn_constructor_kwargs={"env": forwarded_env()},
            num_cpus=1 if self.gpus_per_worker == 0 else None,
            num_gpus=self.gpus_per_worker or None,
        )

    def batches(self) -> Iterator[dict[str, Any]]:
        """The answer batches in the order they return (blocks as they finish)."""
        return iter(self.dataset().iter_batches(batch_size=None, batch_format="numpy"))

    def stop_sending(self) -> int:
        """Pull no more batches: :meth:`run` stores the one it waits for, shuts Ray Data's
        executor down and returns (``stop_reason="interrupted"``). Returns the cells in flight
        (at most one batch per worker)."""
        self._halt.set()
        self.stats.stop_reason = self.stats.stop_reason or "interrupted"
        left = self.stats.planned - self.stats.done - self.stats.duplicates
        return max(0, min(left, self.workers * self.batch_size))

    async def run(self) -> CollectStats:
        """Dispatch every planned cell and commit the answers as batches return."""
        st = self.stats
        st.started = time.monotonic()
        st.window = self.workers * self.batch_size
        if not self.slots:
            st.finished = time.monotonic()
            return st
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[Any] = asyncio.Queue()
        try:
            # Its own daemon thread (not the loop's executor): a forced stop never waits for it.
            threading.Thread(
                target=self._read,
                args=(self.batches(), loop, arrived),
                name="ray-batches",
                daemon=True,
            ).start()
            while (item := await arrived.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                self._commit(item)
        except asyncio.CancelledError:
            st.stop_reason = "interrupted"
            raise
        except ConfigError:
            raise
        except Exception as exc:  # a worker error Ray gave up on (after its retries)
            st.stop_reason = "fatal"
            first = str(exc).strip().splitlines()
            raise ConfigError(
                f"a Ray worker failed: {type(exc).__name__}: {first[-1] if first else ''}"
            ) from None
        finally:
            self._halt.set()
            st.finished = time.monotonic()
            self._notify()
        return st

    def _read(
        self,
        iterator: Iterator[dict[str, Any]],
        loop: asyncio.AbstractEventLoop,
        arrived: asyncio.Queue[Any],
    ) -> None:
        """The reader thread: hand each batch to the loop until the end or a halt.

        The iterator is closed here, in the thread that ran it: that shuts Ray Data's
        executor (and its actors) down while Ray is up.
        """

        def put(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(arrived.put_nowait, item)

        try:
            for batch in iterator:
                put(batch)
                if self._halt.is_set():
                    break
        except BaseException as exc:  # handed to the loop, raised there
            put(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # shutting down anyway
                    close()
            put(_END)

    def _commit(self, batch: Mapping[str, Any]) -> None:
        st = self.stats
        rows = [decode_row(str(text)) for text in batch["row"]]
        workers = [str(w) for w in batch["worker"]]
        st.requests += int(sum(int(x) for x in batch["requests"]))
        st.retries += int(sum(int(x) for x in batch["retries"]))
        per_worker: dict[str, int] = {}
        for row, worker in zip(rows, workers, strict=True):
            per_worker[worker] = per_worker.get(worker, 0) + 1
            if not self.sink.add_response(self.run_id, row):
                st.duplicates += 1
                st.already_stored += 1
                continue
            st.done += 1
            st.failures += int(row.failures or 0)
            st.prompt_tokens += int(row.prompt_tokens or 0)
            st.completion_tokens += int(row.completion_tokens or 0)
            if row.rating == MISSING_RATING:
                st.missing += 1
        for worker, cells in per_worker.items():
            st.tally(worker, cells)
        self._notify()

    def _notify(self) -> None:
        if self.on_update is not None:
            self.on_update(self.stats)

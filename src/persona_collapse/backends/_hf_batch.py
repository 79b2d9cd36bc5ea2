"""Micro-batching for in-process model backends (``hf/``, ``vllm/``).

The runner keeps up to ``--concurrency`` requests in flight, each awaiting
``backend.complete``. :class:`MicroBatcher` queues them; one drain task cuts
the queue into batches of at most ``max_batch`` requests and hands each batch
to ``process`` in a single worker thread (models are not thread-safe), so the
event loop stays free while the model runs. Before cutting a batch it yields
to the event loop until as many requests are queued as the previous batch
held (or a few dozen yields passed), so workers that were just answered can
queue their next request first.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from ._types import BackendError, ChatRequest, Fatal

__all__ = ["MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")

_YIELDS = 64


class MicroBatcher(Generic[T, R]):
    """Batches awaited items for ``process`` (run in one worker thread).

    ``process(batch)`` returns one result or exception per item, in order;
    an exception it raises is turned into one for every item by ``on_error``.
    ``batches`` / ``items`` count what was processed.
    """

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R | BaseException]],
        on_error: Callable[[BaseException], BaseException],
        *,
        max_batch: int,
        thread_name: str = "model",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.process = process
        self.on_error = on_error
        self.max_batch = int(max_batch)
        self._thread_name = thread_name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next batch and wait for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._drainer is None or self._drainer.done() or self._drainer.get_loop() is not loop:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        target = 1
        while self._pending:
            for _ in range(_YIELDS):
                if len(self._pending) >= min(target, self.max_batch):
                    break
                await asyncio.sleep(0)
            size = self.max_batch
            batch = [(i, f) for i, f in self._pending[:size] if not f.done()]
            del self._pending[:size]
            if batch:
                target = len(batch)
                await self._run(batch)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)
        try:
            results = await loop.run_in_executor(
                self._executor, self.process, [item for item, _ in batch]
            )
        except asyncio.CancelledError:  # aclose: nobody will hand these results out
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            error = self.on_error(exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        self.batches += 1
        self.items += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def aclose(self) -> None:
        """Cancel what is queued and the batch in progress (its callers get CancelledError),
        then stop the worker thread once that batch's ``process`` call returns."""
        for _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending.clear()
        if self._drainer is not None and not self._drainer.done():
            self._drainer.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def check_decoding(request: ChatRequest) -> None:
    """Refuse settings a local engine cannot run (max_tokens < 1, negative or NaN temperature)."""
    if request.max_tokens < 1:
        raise BackendError(Fatal(f"max_tokens must be at least 1, got {request.max_tokens}"))
    if not math.isfinite(request.temperature) or request.temperature < 0:
        raise BackendError(Fatal(f"temperature must be a number >= 0, got {request.temperature}"))

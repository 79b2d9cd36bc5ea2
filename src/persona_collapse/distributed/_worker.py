"""The Ray actor: one model replica answering batches of cells with the published protocol.

A :class:`CellWorker` is the callable class handed to Ray Data's
``map_batches``: Ray makes one instance per actor of the pool (one model
replica, ``hf/`` or an in-process ``vllm/`` engine, created by
:func:`persona_collapse.backends.create_backend` exactly as a single-process
run creates it). Each call receives a batch of cells (columns ``persona_id``,
``item_id``, ``repetition``) and runs the SAME :class:`~persona_collapse.collect.Collector`
the single-process runner runs over them, with the same run seed, so every
request carries the seed the single-process run gives it
(:func:`~persona_collapse.collect.request_seed`) and both methods (logprobs:
one forward per cell, the exact digit distribution; sampling: up to
``max_attempts`` one-token draws, then the fallback) answer as they would
there. Nothing is written here: the answers go back to the driver, which is
the store's single writer.

Returned columns: ``row`` (one JSON-encoded :class:`~persona_collapse.store.ResponseRow`
per cell), ``worker`` (the actor's id, stable across restarts), and the batch's
transport counters on its first row (``requests``, ``retries``; 0 on the others).

The actor's backend is :func:`~persona_collapse.backends.create_backend`'s,
wrapped by the class :data:`WORKER_WRAPPER_ENV` names (``module:Class``, a
:class:`~persona_collapse.backends.Backend` taking the backend to wrap) when
that variable is set: fault-injection tests set it to
:class:`persona_collapse.testing.CrashOnceBackend` (see
:func:`persona_collapse.testing.crash_once_env`), and the driver forwards it
with the other ``PERSONA_COLLAPSE_*`` settings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import os
from collections.abc import Mapping

import numpy as np

from ..backends import Backend, create_backend
from ..collect import CollectConfig, Collector, Slot
from ..errors import ConfigError
from ..instruments import Instrument
from ..store import ResponseRow

__all__ = ["WORKER_WRAPPER_ENV", "CellWorker", "decode_row", "encode_row", "worker_backend"]

WORKER_WRAPPER_ENV = "PERSONA_COLLAPSE_WORKER_BACKEND_WRAPPER"
"""``module:Class`` of a backend wrapper each worker applies to its backend (tests only)."""


def encode_row(row: ResponseRow) -> str:
    """One answer as JSON (floats round-trip exactly)."""
    return json.dumps(dataclasses.asdict(row))


def decode_row(text: str) -> ResponseRow:
    return ResponseRow(**json.loads(text))


class _ListSink:
    """Collects the rows of one batch in memory (the driver stores them)."""

    def __init__(self) -> None:
        self.rows: list[ResponseRow] = []

    def add_response(self, run_id: str, row: ResponseRow) -> bool:
        self.rows.append(row)
        return True


class CellWorker:
    """One model replica; ``__call__`` answers a batch of cells (see the module docs).

    ``env``: environment variables set in the actor before the model loads
    (the driver forwards its ``PERSONA_COLLAPSE_*`` and ``HF_*`` settings).
    """

    def __init__(
        self,
        model: str,
        instrument: Instrument,
        personas: Mapping[int, str],
        config: CollectConfig,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        os.environ.update(env or {})
        self.model = model
        self.instrument = instrument
        self.personas = dict(personas)
        self.config = config
        self.backend = worker_backend(model, config)
        self.worker_id = _actor_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        slots = [
            Slot(int(p), int(i), int(r))
            for p, i, r in zip(
                batch["persona_id"], batch["item_id"], batch["repetition"], strict=True
            )
        ]
        sink = _ListSink()
        collector = Collector(
            self.backend,
            sink,
            "ray",
            self.instrument,
            slots,
            self.config,
            personas=self.personas,
        )
        stats = asyncio.run(collector.run())
        n = len(sink.rows)
        requests = np.zeros(n, dtype=np.int64)
        retries = np.zeros(n, dtype=np.int64)
        if n:
            requests[0] = stats.requests
            retries[0] = stats.retries
        return {
            "row": np.array([encode_row(r) for r in sink.rows], dtype=object),
            "worker": np.array([self.worker_id] * n, dtype=object),
            "requests": requests,
            "retries": retries,
        }


def worker_backend(model: str, config: CollectConfig) -> Backend:
    """The actor's backend, as a single-process run creates it, wrapped by the class
    :data:`WORKER_WRAPPER_ENV` names when it is set (see the module docs)."""
    backend = create_backend(model, seed=config.seed, timeout_s=config.timeout_s)
    target = os.environ.get(WORKER_WRAPPER_ENV)
    if not target:
        return backend
    module, _, name = target.partition(":")
    try:
        wrapper = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ConfigError(f"{WORKER_WRAPPER_ENV}={target}: no such backend wrapper") from None
    wrapped: Backend = wrapper(backend)
    return wrapped


def _actor_id() -> str:
    """A short id of this actor (``pid-N`` outside Ray); kept across Ray's restarts."""
    try:
        import ray

        actor = ray.get_runtime_context().get_actor_id()
    except Exception:
        actor = None
    return f"w-{actor[:6]}" if actor else f"pid-{os.getpid()}"  # the tail is the job id

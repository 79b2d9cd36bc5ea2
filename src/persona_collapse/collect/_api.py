"""Collection from Python: ``persona_collapse.collect(model, **options)`` and its async form.

:func:`collect` runs a whole session (what ``persona-collapse run`` does) and
returns a :class:`CollectedRun`. It works in a plain script and inside a
running event loop (a Jupyter cell), where :func:`run_collection`'s own
``asyncio.run`` would fail: there the session runs on a worker thread with its
own loop and the call waits for it. :func:`collect_async` awaits the session
on a worker thread, leaving the caller's loop free.

This package is itself callable (:class:`CallableModule`), so
``persona_collapse.collect(...)`` calls :func:`collect` while
``persona_collapse.collect.RunOptions`` and the rest stay where they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
import types
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ._outcome import RunOutcome
from ._run_options import PROTOCOL_KEYWORDS, RunOptions
from ._run_session import run_collection


@dataclass(frozen=True)
class CollectedRun:
    """What :func:`collect` returns: the stored run, usable wherever a SOURCE is.

    ``source`` is ``STORE:RUN_ID`` (also what ``str()`` gives, so it can be
    handed to the command line); ``outcome`` is the session's
    :class:`RunOutcome` (slots, failures, cost).
    """

    outcome: RunOutcome

    @property
    def source(self) -> str:
        return self.outcome.source

    @property
    def run_id(self) -> str:
        return self.outcome.run.run_id

    @property
    def store(self) -> str:
        return self.outcome.store_path

    @property
    def complete(self) -> bool:
        return self.outcome.complete

    def summary(self) -> str:
        return self.outcome.summary()

    def __str__(self) -> str:
        return self.source


def _valid_keywords() -> list[str]:
    """:class:`RunOptions` fields (less ``model``), the protocol keywords before ``protocol``."""
    names: list[str] = []
    for f in dataclasses.fields(RunOptions):
        if f.name == "protocol":
            names.extend(PROTOCOL_KEYWORDS)
        if f.name != "model":
            names.append(f.name)
    return names


def run_options(model: str, **options: Any) -> RunOptions:
    """:class:`RunOptions` from keyword arguments (``quiet`` defaults to True here).

    The protocol keywords (``method=``, ``temperature=``, ...) set the fields
    of ``protocol`` (:meth:`RunOptions.build`). An unknown name raises
    :class:`ConfigError` listing the valid ones.
    """
    valid = _valid_keywords()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown collect option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}"
        )
    options.setdefault("quiet", True)
    return RunOptions.build(model, **options)


def _collect_now(options: RunOptions) -> CollectedRun:
    return CollectedRun(run_collection(options))


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def collect(model: str, **options: Any) -> CollectedRun:
    """Collect every missing slot of a run (``persona-collapse run MODEL``) and return its handle.

    Keyword arguments are :class:`RunOptions` fields (``store``, ``personas``,
    ``n_personas``, ``reps``, ``base_url``, ...) and the protocol keywords
    (``method``, ``temperature``, ``max_attempts``, ``top_logprobs``; see
    :func:`run_options`). Impossible combinations (``ray=`` for an API model,
    ``batch=True`` without a batch API) are refused before anything is loaded.
    Inside a running event loop the session runs on a worker thread with its
    own loop and this call blocks until it ends; elsewhere it runs here. Raises
    :class:`ConfigError` / :class:`DataError` as ``run`` does.
    """
    opts = run_options(model, **options)
    if not _in_running_loop():
        return _collect_now(opts)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = _collect_now(opts)
        except BaseException as exc:  # handed to the caller's thread below
            result["error"] = exc

    worker = threading.Thread(target=work, name="persona-collapse-collect", daemon=True)
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    value: CollectedRun = result["value"]
    return value


async def collect_async(model: str, **options: Any) -> CollectedRun:
    """Awaitable :func:`collect`: the session runs on a worker thread; the caller's loop stays free."""
    opts = run_options(model, **options)
    return await asyncio.to_thread(_collect_now, opts)


class CallableModule(types.ModuleType):
    """The ``persona_collapse.collect`` package, callable as :func:`collect`."""

    def __call__(self, model: str, **options: Any) -> CollectedRun:
        return collect(model, **options)


def make_callable(module_name: str) -> None:
    """Make the module ``module_name`` (this package) callable as :func:`collect`."""
    sys.modules[module_name].__class__ = CallableModule

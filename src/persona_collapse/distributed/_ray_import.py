"""Importing Ray (the ``ray`` extra) and connecting to a cluster, with one-line errors."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError

__all__ = ["LOCAL", "connect", "import_ray"]

#: ``--ray local``: start a Ray instance on this machine (no cluster needed).
LOCAL = "local"
_INSTALL = "pip install 'persona-collapse[ray]'"


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a ConfigError naming the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError(
            f"--ray needs the ray extra ({exc.name or 'ray'} is not installed): {_INSTALL}"
        ) from None
    return ray


def connect(address: str) -> bool:
    """Join the cluster at ``address`` (``local``: start one here); True when this call started Ray.

    An already-initialised Ray (a notebook, a test) is used as it is. ``ray.init``
    replaces the process's SIGTERM handler with its own (which exits mid-run, and
    in the core worker dumps a stack and aborts); the handler there before (a run's
    "SIGTERM is Ctrl-C") is put back, so a stopped Ray run ends as any other run.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    with _keeping_sigterm():
        _init(ray, address)
    return True


@contextlib.contextmanager
def _keeping_sigterm() -> Iterator[None]:
    """Within the block, whatever changes the SIGTERM handler, it is put back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _init(ray: Any, address: str) -> None:
    try:
        if address == LOCAL:
            ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        else:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise ConfigError(
            f"--ray {address}: cannot connect to the Ray cluster ({first[0] if first else exc}); "
            "start one with `ray start --head` or use --ray local"
        ) from None

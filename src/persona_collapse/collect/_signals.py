"""SIGTERM handled like Ctrl-C, so a stopped run prints the same summary and exit status."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM does what Ctrl-C (SIGINT) does: the same summary and exit.

    The signal is handed to whatever handles SIGINT at that moment (asyncio's
    runner cancels the run's main task; outside it ``KeyboardInterrupt`` is
    raised). Outside the main thread, or where SIGTERM cannot be handled, it
    does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def as_interrupt(signum: int, frame: object) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)  # type: ignore[arg-type]
        else:
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, as_interrupt)
    except (ValueError, OSError):  # pragma: no cover - no signals here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Stopping a run: SIGTERM handled like Ctrl-C, and a stop that keeps the answers in flight.

:func:`terminate_as_interrupt` makes SIGTERM do what Ctrl-C does (the same
summary and exit status 130). While a collector fills slots,
:class:`GracefulStop` takes both signals over: the first one stops sending (no
new request starts) and gives the answers already in flight up to
:data:`STOP_GRACE_S` seconds to arrive, so they are stored instead of being
asked (and paid) again on resume; a second signal, or the end of the grace
period, stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TextIO

_Handler = Callable[[int, FrameType | None], Any] | int | None

STOP_GRACE_S = 10.0
"""Seconds a stopped run (Ctrl-C, SIGTERM) waits for the answers already in flight."""

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


class GracefulStop:
    """Ctrl-C and SIGTERM while ``task`` (a collection) runs: stop sending, then stop.

    First signal: ``stop_sending()`` is called (the collector starts no new
    request and ends once the requests in flight are answered and stored), a
    line on ``stream`` says so, and ``task`` is cancelled after ``grace_s``
    seconds if it has not ended by then. Without ``stop_sending`` (a runner
    that cannot stop that way), or on a second signal, ``task`` is cancelled
    at once. ``requested`` tells afterwards whether a signal came.

    Handlers are installed on the running loop in the main thread only (elsewhere,
    and where the loop cannot take them, nothing changes); the handlers that were
    there before are put back on exit.
    """

    def __init__(self, grace_s: float = STOP_GRACE_S, stream: TextIO | None = None) -> None:
        self.grace_s = grace_s
        self.stream = stream
        self.requested = False
        self._task: asyncio.Future[Any] | None = None
        self._stop_sending: Callable[[], int] | None = None
        self._timer: asyncio.TimerHandle | None = None

    @contextlib.contextmanager
    def watching(
        self, task: asyncio.Future[Any], stop_sending: Callable[[], int] | None
    ) -> Iterator[None]:
        """Within the block, the signals stop ``task`` as the class docs say.

        ``stop_sending``: stops new requests and returns how many are in flight.
        """
        self._task, self._stop_sending = task, stop_sending
        loop = asyncio.get_running_loop()
        installed: list[tuple[signal.Signals, _Handler]] = []
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                previous = signal.getsignal(signum)
                try:
                    loop.add_signal_handler(signum, self._on_signal)
                except (ValueError, RuntimeError, NotImplementedError):  # pragma: no cover
                    continue
                installed.append((signum, previous))
        try:
            yield
        finally:
            if self._timer is not None:
                self._timer.cancel()
            for signum, previous in installed:
                loop.remove_signal_handler(signum)
                if previous is not None:
                    signal.signal(signum, previous)

    def _on_signal(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        if self.requested or self._stop_sending is None:
            self.requested = True
            task.cancel()
            return
        self.requested = True
        in_flight = self._stop_sending()
        if in_flight == 0:  # nothing to wait for
            task.cancel()
            return
        self._say(
            f"Stopping: no new request; waiting up to {self.grace_s:g} s for the "
            f"{in_flight} answer{'' if in_flight == 1 else 's'} in flight "
            "(press Ctrl-C again to stop now)."
        )
        self._timer = asyncio.get_running_loop().call_later(self.grace_s, task.cancel)

    def _say(self, line: str) -> None:
        if self.stream is not None:
            print(f"\n{line}", file=self.stream, flush=True)

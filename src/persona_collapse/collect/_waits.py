"""The one wait a stop cuts short: a retry pause or a poll interval (seconds)."""

from __future__ import annotations

import asyncio

__all__ = ["pause_unless"]


async def pause_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` (an ``asyncio.sleep``), or only until ``stop`` is set; True when
    ``stop`` is set."""
    if not stop.is_set():
        sleep = asyncio.ensure_future(asyncio.sleep(seconds))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((sleep, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleep.cancel()
            stopped.cancel()
    return stop.is_set()

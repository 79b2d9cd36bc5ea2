"""Retries of a batch run's idempotent reads (polling a batch, downloading its results).

A provider call that only reads (``GET`` a batch, ``GET`` its result file)
can be sent again at no cost and with no risk of a double effect, so a
transient failure of one (a 5xx, a 429, a timeout, a broken body: a
:class:`~persona_collapse.backends.Retry` decision) is waited out and sent
again under the run's :class:`BackoffPolicy`, as a direct request's would be,
instead of ending the run. A :class:`~persona_collapse.backends.Fatal`
failure, retries used up or a Retry-After longer than the policy's cap raise
the failure as before (the run stops, resumable). Creating a batch is not a
read and is never retried here (see ``_batch_adopt``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..backends import BackendError, Retry
from ._policy import BackoffPolicy, RetryWait
from ._waits import pause_unless

__all__ = ["ReadStopped", "retried_read"]

T = TypeVar("T")


class ReadStopped(Exception):
    """The run was stopped while a read waited to be retried (nothing was read)."""


async def retried_read(
    call: Callable[[], Awaitable[T]],
    policy: BackoffPolicy,
    rng: random.Random,
    stopping: asyncio.Event | None = None,
) -> T:
    """``call()``'s result, sending it again after each transient failure (see module doc).

    ``stopping``: when given and set during a wait, the wait ends at once and
    :class:`ReadStopped` is raised; ``rng`` draws the backoff jitter.
    """
    retries = 0
    while True:
        try:
            return await call()
        except BackendError as exc:
            decision = exc.decision
            if not isinstance(decision, Retry):
                raise
            plan = policy.plan(retries, rng, decision.after_s)
            if not isinstance(plan, RetryWait):
                raise
        retries += 1
        if stopping is None:
            await asyncio.sleep(plan.seconds)
        elif await pause_unless(stopping, plan.seconds):
            raise ReadStopped

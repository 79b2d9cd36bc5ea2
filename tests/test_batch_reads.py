"""Retried batch reads (``collect._batch_reads``) decided offline: typed decisions in, one outcome out."""

from __future__ import annotations

import asyncio
import random

import pytest

from persona_collapse.backends import BackendError, Fatal, Retry
from persona_collapse.collect._batch_reads import ReadStopped, retried_read
from persona_collapse.collect._policy import BackoffPolicy

FAST = BackoffPolicy(base_s=0.0, cap_s=0.0, max_retries=3)


class _Script:
    """Fails with the given errors in order, then answers ``"read"``; counts calls."""

    def __init__(self, *errors: BackendError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "read"


def _retry(kind: str = "transient", after_s: float | None = None) -> BackendError:
    return BackendError(Retry(kind, after_s=after_s))  # type: ignore[arg-type]


def test_transient_failures_are_sent_again_until_the_read_succeeds() -> None:
    call = _Script(_retry(), _retry("rate_limit", 0.0), _retry("timeout"))
    assert asyncio.run(retried_read(call, FAST, random.Random(0))) == "read"
    assert call.calls == 4


def test_a_fatal_failure_is_raised_at_once() -> None:
    call = _Script(BackendError(Fatal("bad key")))
    with pytest.raises(BackendError) as caught:
        asyncio.run(retried_read(call, FAST, random.Random(0)))
    assert isinstance(caught.value.decision, Fatal) and call.calls == 1


def test_used_up_retries_raise_the_last_failure() -> None:
    call = _Script(*(_retry() for _ in range(10)))
    with pytest.raises(BackendError) as caught:
        asyncio.run(retried_read(call, FAST, random.Random(0)))
    assert isinstance(caught.value.decision, Retry) and call.calls == FAST.max_retries + 1


def test_a_retry_after_past_the_cap_is_raised_not_waited() -> None:
    policy = BackoffPolicy(max_retry_after_s=5.0)
    call = _Script(_retry("rate_limit", 3600.0))
    with pytest.raises(BackendError):
        asyncio.run(retried_read(call, policy, random.Random(0)))
    assert call.calls == 1


def test_a_stop_ends_the_wait_before_a_retry_at_once() -> None:
    policy = BackoffPolicy(base_s=60.0, cap_s=60.0, jitter=0.0)
    call = _Script(_retry())

    async def stopped_while_waiting() -> None:
        stopping = asyncio.Event()
        read = asyncio.ensure_future(retried_read(call, policy, random.Random(0), stopping))
        await asyncio.sleep(0.05)
        stopping.set()
        await asyncio.wait_for(read, timeout=5.0)

    with pytest.raises(ReadStopped):
        asyncio.run(stopped_while_waiting())
    assert call.calls == 1

"""A backend wrapper that kills its process once, for fault-injection tests of Ray workers.

Selected through the environment, so that a test reaches a Ray worker the way
the worker's other model settings reach it (the driver forwards every
``PERSONA_COLLAPSE_*`` variable to the actors): :func:`crash_once_env` gives the
variables; the worker wraps its backend in :func:`wrap_backend`'s result when
:data:`WRAPPER_ENV` names it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..backends import Backend, ChatRequest, ChatResult

__all__ = ["CRASH_AFTER_ENV", "CRASH_FLAG_ENV", "CrashOnceBackend", "crash_once_env"]

WRAPPER = "persona_collapse.testing:CrashOnceBackend"
"""Module path of the wrapper, the value of the worker's backend-wrapper variable."""

CRASH_AFTER_ENV = "PERSONA_COLLAPSE_TEST_CRASH_AFTER"
"""Requests the wrapped backend answers before its process exits (``os._exit(1)``)."""

CRASH_FLAG_ENV = "PERSONA_COLLAPSE_TEST_CRASH_FLAG"
"""A file created at the crash: it exists afterwards, so the crash happens once per file."""


def crash_once_env(after: int, flag: str | os.PathLike[str], *, wrapper_env: str) -> dict[str, str]:
    """The environment that makes a worker's process exit once after ``after`` requests.

    ``wrapper_env``: the variable the worker reads for a backend wrapper
    (``persona_collapse.distributed.WORKER_WRAPPER_ENV``).
    """
    return {wrapper_env: WRAPPER, CRASH_AFTER_ENV: str(int(after)), CRASH_FLAG_ENV: str(flag)}


class CrashOnceBackend(Backend):
    """``inner`` answering as it does, except that its process exits once (see the module docs).

    The request on which it exits is left unanswered: whoever sent it retries it.
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.spec)
        self.inner = inner
        self.after = int(os.environ.get(CRASH_AFTER_ENV, "-1"))
        flag = os.environ.get(CRASH_FLAG_ENV)
        self.flag = Path(flag) if flag else None
        self.calls = 0

    @property
    def supports_logprobs(self) -> bool:
        return self.inner.supports_logprobs

    @property
    def preferred_concurrency(self) -> int:
        return self.inner.preferred_concurrency

    @property
    def simulated(self) -> bool:
        return self.inner.simulated

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.inner.secrets

    def describe(self) -> str:
        return self.inner.describe()

    async def check(self, *, timeout_s: float = 30.0) -> None:
        await self.inner.check(timeout_s=timeout_s)

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.calls += 1
        if self.flag is not None and 0 <= self.after < self.calls:
            try:
                self.flag.touch(exist_ok=False)  # once: the restarted process finds the flag
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

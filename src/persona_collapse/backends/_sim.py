"""``sim/NAME``: an in-process SIMULATED respondent (no HTTP, no language model).

For tests, benchmarks and the offline demo only: the answers come from
:class:`persona_collapse.simulate.SimulatedRespondent`, a latent statistical
model, never from a real model. Every description says so.

Determinism: the n-th request with the same (seed, prompt, decoding settings)
gets the same answer in every run, whatever the order of other requests; a
repeated identical request (a retry, or another repetition of one slot) gets
a fresh draw.
"""

from __future__ import annotations

import asyncio
import math
import threading

from ..errors import ConfigError
from ..simulate import VARIANTS, SimulatedRespondent, stable_rng, stable_seed
from ._backend import Backend
from ._types import BackendError, ChatRequest, ChatResult, Fatal, ModelSpec

SIMULATED_NOTE = "SIMULATED data: not answers of any language model"


class SimBackend(Backend):
    """A simulated respondent behind the backend interface (``sim/base``, ``sim/secure``, ``sim/insecure``).

    Overrides of the :class:`Backend` defaults: :attr:`supports_logprobs` and
    :attr:`simulated` (both true) and :meth:`describe` (says SIMULATED).
    """

    def __init__(self, spec: ModelSpec, *, seed: int = 0) -> None:
        if spec.name not in VARIANTS:
            known = ", ".join(f"sim/{name}" for name in VARIANTS)
            raise ConfigError(f"unknown simulated model {spec.full!r}: use one of {known}")
        super().__init__(ModelSpec(spec.family, spec.name, {**spec.extra, "simulated": "true"}))
        self.seed = int(seed)
        self.respondent = SimulatedRespondent(spec.name, seed=self.seed)
        self._counts: dict[int, int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SimBackend({self.spec.full!r}, seed={self.seed}) [SIMULATED]"

    @property
    def supports_logprobs(self) -> bool:
        return True

    @property
    def simulated(self) -> bool:
        """Always true: the data of this backend are simulated."""
        return True

    def describe(self) -> str:
        """One line that says the data are SIMULATED."""
        return f"{self.spec.full}: {SIMULATED_NOTE}. {self.respondent.describe()}"

    def _draw_index(self, key: int) -> int:
        with self._lock:
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
        return n

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Answer from the simulated respondent (the last user message is the prompt)."""
        await asyncio.sleep(0)  # let other requests interleave, like a real client
        prompt = next(
            (m.get("content", "") for m in reversed(request.messages) if m.get("role") == "user"),
            "",
        )
        if request.max_tokens < 1:
            raise BackendError(Fatal(f"max_tokens must be at least 1, got {request.max_tokens}"))
        if not math.isfinite(request.temperature) or request.temperature < 0:
            raise BackendError(
                Fatal(f"temperature must be a number >= 0, got {request.temperature}")
            )
        key = stable_seed(
            self.seed,
            self.spec.name,
            request.seed,
            request.temperature,
            request.max_tokens,
            prompt,
        )
        rng = stable_rng(key, self._draw_index(key))
        completion = self.respondent.generate(
            prompt, temperature=request.temperature, max_tokens=request.max_tokens, rng=rng
        )
        top = None
        if request.top_logprobs is not None:
            top = self.respondent.top_logprobs(prompt, k=request.top_logprobs)
        return ChatResult(
            text=completion.text,
            top_logprobs=top,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            finish_reason=completion.finish_reason,
        )

"""Decoding settings of the published protocol (PROTOCOL.md section 2)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..errors import ConfigError

Method = Literal["sample", "logprobs"]

MAX_TOP_LOGPROBS = 1000
"""Most ``--top-logprobs`` a run asks for (llama.cpp and vLLM servers accept hundreds)."""


@dataclass(frozen=True)
class ProtocolSettings:
    """How each slot is asked. Defaults are the published values (declared here only).

    ``temperature``: sampling temperature of the one-token requests (published
    0.1; 0 asks for greedy answers; logprob runs always ask at 1.0 and
    re-weight later). ``max_attempts``: one-token attempts before the fallback
    (published 10). ``fallback_max_tokens``: length of the single longer
    generation parsed for the first standalone integer on the scale.
    ``top_logprobs``: alternatives requested per token in logprob mode
    (published 20; OpenAI allows at most 20; at most :data:`MAX_TOP_LOGPROBS`).
    Honoured by every backend.

    Values are checked on construction (:class:`ConfigError` naming the
    command-line option); ``temperature`` is stored as a float and
    ``max_attempts`` / ``top_logprobs`` as ints, so equal settings hash equal.
    """

    method: Method = "sample"
    temperature: float = 0.1
    max_attempts: int = 10
    fallback_max_tokens: int = 64
    top_logprobs: int = 20
    logprob_temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ("sample", "logprobs"):
            raise ConfigError(f"--method {self.method!r} is unknown; use sample or logprobs")
        if not (math.isfinite(self.temperature) and 0 <= self.temperature <= 2):
            raise ConfigError("--temperature must be between 0 and 2 (0: greedy)")
        if self.max_attempts < 1:
            raise ConfigError("--max-attempts must be at least 1")
        if not 1 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise ConfigError(f"--top-logprobs must be between 1 and {MAX_TOP_LOGPROBS}")
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "max_attempts", int(self.max_attempts))
        object.__setattr__(self, "top_logprobs", int(self.top_logprobs))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

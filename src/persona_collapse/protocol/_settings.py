"""Decoding settings of the published protocol (PROTOCOL.md section 2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Method = Literal["sample", "logprobs"]


@dataclass(frozen=True)
class ProtocolSettings:
    """How each slot is asked. Defaults are the published values.

    ``temperature``: sampling temperature of the one-token requests (published
    0.1; logprob runs always ask at 1.0 and re-weight later). ``max_attempts``:
    one-token attempts before the fallback (published 10). ``fallback_max_tokens``:
    length of the single longer generation parsed for the first standalone
    integer on the scale. ``top_logprobs``: alternatives requested per token in
    logprob mode (published 20; OpenAI allows at most 20). Honoured by every backend.
    """

    method: Method = "sample"
    temperature: float = 0.1
    max_attempts: int = 10
    fallback_max_tokens: int = 64
    top_logprobs: int = 20
    logprob_temperature: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

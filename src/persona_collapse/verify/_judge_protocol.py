"""The two published verification protocols as data.

* ``text`` (Costa & Vicente 2026): answers at T = 1, ``max_tokens=512``, 30
  samples per question; the judge answers in text, ``max_tokens=10``, T = 0.
* ``logprobs`` (Betley et al. 2025): answers at T = 1, ``max_tokens=600``
  (100 samples per question in the paper; ``--samples`` sets it); the judge
  answers one token, T = 0, ``top_logprobs=20``.

The published judge is ``gpt-4o-2024-08-06``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from ._scoring import Scoring

__all__ = ["PUBLISHED_JUDGE", "VerifyProtocol", "published_protocol"]

PUBLISHED_JUDGE = "openai/gpt-4o-2024-08-06"
"""The judge model of both papers."""

_ANSWER_MAX_TOKENS = {"text": 512, "logprobs": 600}


@dataclass(frozen=True)
class VerifyProtocol:
    """Decoding of answers and judgements. Temperatures are sampling temperatures.

    ``samples``: answers per question; ``max_tokens``: answer length limit
    (tokens); ``judge_top_logprobs``: alternatives requested for the judge's
    first token (logprob rule only, else None); ``timeout_s``: per request.
    """

    scoring: Scoring = "text"
    samples: int = 30
    temperature: float = 1.0
    max_tokens: int = 512
    judge_temperature: float = 0.0
    judge_max_tokens: int = 10
    judge_top_logprobs: int | None = None
    timeout_s: float = 120.0

    def fingerprint(self) -> dict[str, Any]:
        """What must stay fixed when a run resumes (``samples`` and timeout may change)."""
        values = asdict(self)
        values.pop("samples")
        values.pop("timeout_s")
        return values


def published_protocol(
    scoring: str,
    *,
    samples: int = 30,
    temperature: float = 1.0,
    max_tokens: int | None = None,
    timeout_s: float = 120.0,
) -> VerifyProtocol:
    """The protocol of the ``scoring`` rule (``text`` or ``logprobs``) with overrides."""
    if scoring not in ("text", "logprobs"):
        raise ConfigError(f"--scoring {scoring!r} is unknown; use text or logprobs")
    if samples < 1:
        raise ConfigError("--samples must be at least 1")
    if not 0.0 <= temperature <= 2.0:
        raise ConfigError("--temperature must be between 0 and 2")
    if max_tokens is not None and max_tokens < 1:
        raise ConfigError("--max-tokens must be at least 1")
    if not timeout_s > 0:
        raise ConfigError("--timeout must be a positive number of seconds")
    logprobs = scoring == "logprobs"
    return VerifyProtocol(
        scoring="logprobs" if logprobs else "text",
        samples=int(samples),
        temperature=float(temperature),
        max_tokens=int(max_tokens or _ANSWER_MAX_TOKENS[scoring]),
        judge_temperature=0.0,
        judge_max_tokens=1 if logprobs else 10,
        judge_top_logprobs=20 if logprobs else None,
        timeout_s=float(timeout_s),
    )

"""Provider-neutral chat requests and their simulated completions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..simulate import SimulatedRespondent, count_tokens


class ApiError(Exception):
    """A request the API refuses: rendered in the provider's error format.

    ``kind`` is provider-neutral: ``invalid_request``, ``authentication``,
    ``not_found``, ``rate_limit``, ``server``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request",
        *,
        code: str | None = None,
        param: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.headers = headers or []


@dataclass(frozen=True)
class IncomingChat:
    """A chat request as the server received it (either API): the last user message as
    ``prompt`` plus decoding settings. The client side's request is
    :class:`persona_collapse.backends.ChatRequest`.

    ``top_logprobs`` is 0 unless log-probabilities were requested (OpenAI only).
    """

    model: str
    prompt: str
    temperature: float
    max_tokens: int
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    seed: int | None = None


@dataclass(frozen=True)
class Choice:
    """One simulated completion, ready for either provider's response format.

    ``top`` holds ``(token, natural-log probability)`` pairs of the first
    token when log-probabilities were requested, and ``token_logprob`` the
    log-probability of the token that was produced.
    """

    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int
    top: list[tuple[str, float]] | None = None
    token_logprob: float | None = None


def message_text(content: Any) -> str:
    """The text of a chat message ``content``: a string or a list of text parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        ]
        return "".join(texts)
    raise ApiError(400, "message content must be a string or a list of text parts")


def last_user_prompt(messages: Any) -> str:
    """The text of the last ``user`` message of a chat."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content", ""))
    raise ApiError(400, "'messages' holds no user message", param="messages")


def _sample_token(
    top: list[tuple[str, float]], temperature: float, rng: np.random.Generator
) -> tuple[str, float]:
    logp = np.array([lp for _, lp in top])
    if temperature == 0:
        j = int(np.argmax(logp))
    else:
        w = np.exp((logp - logp.max()) / temperature)
        j = int(np.searchsorted(np.cumsum(w), rng.random() * w.sum(), side="right"))
        j = min(j, len(top) - 1)
    return top[j]


def complete(
    respondent: SimulatedRespondent, request: IncomingChat, rng: np.random.Generator
) -> list[Choice]:
    """``request.n`` completions of ``request`` by ``respondent``.

    With log-probabilities and ``max_tokens == 1`` the produced token is drawn
    from the reported first-token distribution at the request temperature, so
    text and log-probabilities agree; the reported ``top`` values are always
    the T = 1 distribution (the protocol asks at T = 1).
    """
    choices: list[Choice] = []
    for _ in range(request.n):
        if request.logprobs:
            full = respondent.top_logprobs(request.prompt, k=64)
            top = full[: max(request.top_logprobs, 1)] if request.top_logprobs else []
            if request.max_tokens == 1:
                token, lp = _sample_token(full, request.temperature, rng)
                n_prompt = count_tokens(request.prompt)
                choices.append(Choice(token, "length", n_prompt, 1, top, lp))
                continue
            done = respondent.generate(
                request.prompt,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                rng=rng,
            )
            first = dict(full)
            lp = next((first[t] for t in first if done.text.startswith(t)), math.log(1e-6))
            choices.append(
                Choice(
                    done.text,
                    done.finish_reason,
                    done.prompt_tokens,
                    done.completion_tokens,
                    top,
                    lp,
                )
            )
            continue
        done = respondent.generate(
            request.prompt,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            rng=rng,
        )
        choices.append(
            Choice(done.text, done.finish_reason, done.prompt_tokens, done.completion_tokens)
        )
    return choices

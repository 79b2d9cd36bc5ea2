"""Anthropic's Messages API over the official ``anthropic`` SDK.

Anthropic returns no logprobs: a logprob request is refused with one line.
The SDK's own retries are off: the runner owns retries and rate limiting.
"""

from __future__ import annotations

from typing import Any

import anthropic

from ._anthropic_batch import AnthropicBatchAPI
from ._decisions import (
    SDKErrors,
    Where,
    decision_for_sdk_error,
    error_in_body,
    malformed,
)
from ._decisions import (
    sdk_field as _field,
)
from ._sdk import SDKBackend
from ._types import (
    BackendError,
    ChatRequest,
    ChatResult,
    Fatal,
    ModelSpec,
    RetryDecision,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
NO_LOGPROBS = "Anthropic's API returns no logprobs; use --method sample"


ANTHROPIC_ERRORS = SDKErrors.of("Anthropic", anthropic, anthropic.AnthropicError)
"""The ``anthropic`` SDK's exception types."""


def decision_for_anthropic_error(
    exc: BaseException, where: Where, secrets: tuple[str, ...] = ()
) -> RetryDecision | None:
    """The decision for an exception of the ``anthropic`` SDK; ``None`` for any other.

    As :func:`~persona_collapse.backends.decisions.decision_for_sdk_error`; 529
    (overloaded) is a 5xx, retried.
    """
    return decision_for_sdk_error(exc, ANTHROPIC_ERRORS, where, secrets)


class AnthropicBackend(SDKBackend):
    """A Claude model behind Anthropic's Messages API (or a compatible server at ``base_url``).

    Temperature is sent in the request body (this SDK version has no named
    parameter for it); a leading system message becomes the ``system`` field.
    """

    provider = "Anthropic"
    url_hint = "the API root without /v1 (e.g. https://api.anthropic.com)"

    sdk_errors = ANTHROPIC_ERRORS
    client_class = anthropic.AsyncAnthropic
    batch_class = AnthropicBatchAPI
    """Anthropic's Message Batches."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str,
        key_env: str | None = "ANTHROPIC_API_KEY",
        timeout_s: float = 60.0,
    ) -> None:
        super().__init__(
            spec, base_url=base_url, api_key=api_key, key_env=key_env, timeout_s=timeout_s
        )

    def __repr__(self) -> str:
        return f"AnthropicBackend({self.spec.full!r}, base_url={self.base_url!r})"

    def describe(self) -> str:
        """One line naming the model and the server (never the key)."""
        return f"{self.spec.full} via Anthropic Messages API at {self.base_url} (no logprobs)"

    def _decide(self, exc: BaseException) -> RetryDecision | None:
        return decision_for_anthropic_error(exc, self._where, self.secrets)

    def refuse_logprobs(self, request: ChatRequest) -> None:
        """Raise a ``Fatal`` :class:`BackendError` for a logprob request (the API has none)."""
        if request.top_logprobs is not None:
            raise BackendError(Fatal(NO_LOGPROBS))

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.refuse_logprobs(request)
        return await super().complete(request)

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Messages body of ``request`` (temperature in the body, system message apart)."""
        system = [m["content"] for m in request.messages if m.get("role") == "system"]
        messages = [
            {"role": m["role"], "content": m["content"]}
            for m in request.messages
            if m.get("role") != "system"
        ]
        params: dict[str, Any] = {
            "model": self.spec.name,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if system:
            params["system"] = "\n\n".join(system)
        return params

    async def _send(self, request: ChatRequest) -> Any:
        kwargs = self.request_body(request)
        kwargs["extra_body"] = {"temperature": kwargs.pop("temperature")}
        kwargs["timeout"] = request.timeout_s
        return await self._client.messages.create(**kwargs)

    def _read(self, raw: Any, request: ChatRequest) -> ChatResult:
        if raw is None or isinstance(raw, str | bytes):
            raise BackendError(malformed("response body is not a JSON object", self.secrets))
        error = error_in_body(raw, self.secrets)
        if error is not None:
            raise BackendError(error)
        content = _field(raw, "content")
        if not isinstance(content, list):
            raise BackendError(malformed("response has no content list", self.secrets))
        texts = []
        for block in content:
            if _field(block, "type") == "text":
                text = _field(block, "text")
                if not isinstance(text, str):
                    raise BackendError(malformed("a text block has no text", self.secrets))
                texts.append(text)
        usage = _field(raw, "usage")
        stop = _field(raw, "stop_reason")
        return ChatResult(
            text="".join(texts),
            top_logprobs=None,
            prompt_tokens=int(_field(usage, "input_tokens") or 0),
            completion_tokens=int(_field(usage, "output_tokens") or 0),
            finish_reason=str(stop) if stop is not None else None,
        )

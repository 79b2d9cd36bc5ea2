"""OpenAI-compatible chat completions over the official ``openai`` SDK.

One class serves OpenAI, OpenRouter, Together, DeepSeek, xAI and any
self-hosted OpenAI-compatible server (vLLM, Ollama, llama.cpp) by base URL.
The SDK's own retries are off: the runner owns retries and rate limiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx2
import openai

from ._decisions import (
    SDKErrors,
    Where,
    decision_for_sdk_error,
    error_in_body,
    is_provider_host,
    malformed,
)
from ._decisions import (
    sdk_field as _field,
)
from ._openai_batch import OpenAIBatchAPI
from ._sdk import SDKBackend
from ._types import (
    BackendError,
    BadAnswer,
    ChatRequest,
    ChatResult,
    Fatal,
    ModelSpec,
    RetryDecision,
)

_RawResponse = httpx2.Response
"""The HTTP response type of the openai 3.x SDK (it is built on httpx2)."""

_PROVIDER_NAMES = {
    "openai": "OpenAI",
    "openrouter": "OpenRouter",
    "together": "Together",
    "deepseek": "DeepSeek",
    "xai": "xAI",
    "ollama": "Ollama",
    "llamacpp": "llama.cpp server",
    "vllm": "vLLM server",
}


OPENAI_ERRORS = SDKErrors.of("OpenAI", openai, openai.OpenAIError)
"""The ``openai`` SDK's exception types."""


def decision_for_openai_error(
    exc: BaseException, where: Where, secrets: tuple[str, ...] = ()
) -> RetryDecision | None:
    """The decision for an exception of the ``openai`` SDK; ``None`` for any other exception
    (see :func:`~persona_collapse.backends.decisions.decision_for_sdk_error`)."""
    return decision_for_sdk_error(exc, OPENAI_ERRORS, where, secrets)


class OpenAIBackend(SDKBackend):
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        spec: The parsed model name; ``spec.name`` is sent as the model.
        base_url: API root (e.g. ``https://api.openai.com/v1``).
        api_key: The key (a placeholder for servers that need none). Never
            shown in any message.
        key_env: The environment variable the key is read from, named in
            messages about rejected keys.
        timeout_s: Default per-request timeout; each request's ``timeout_s`` wins.
    """

    sdk_errors = OPENAI_ERRORS
    client_class = openai.AsyncOpenAI
    batch_class = OpenAIBatchAPI

    def __init__(
        self,
        spec: ModelSpec,
        *,
        base_url: str,
        api_key: str,
        key_env: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        local_family = spec.family in ("ollama", "llamacpp", "vllm")
        if spec.family in _PROVIDER_NAMES and (local_family or is_provider_host(base_url)):
            self.provider = _PROVIDER_NAMES[spec.family]
        else:
            self.provider = "the OpenAI-compatible server"
        super().__init__(
            spec, base_url=base_url, api_key=api_key, key_env=key_env, timeout_s=timeout_s
        )
        self._token_param = "max_tokens"

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.spec.full!r}, base_url={self.base_url!r})"

    @property
    def supports_logprobs(self) -> bool:
        return True

    def describe(self) -> str:
        """One line naming the model and the server (never the key)."""
        return f"{self.spec.full} via {self.provider} at {self.base_url} (OpenAI chat completions)"

    # -- SDK hooks ------------------------------------------------------------------

    def _decide(self, exc: BaseException) -> RetryDecision | None:
        return decision_for_openai_error(exc, self._where, self.secrets)

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The chat-completions body of ``request`` (with the SDK's ``timeout``)."""
        kwargs: dict[str, Any] = {
            "model": self.spec.name,
            "messages": [dict(m) for m in request.messages],
            "temperature": request.temperature,
            self._token_param: request.max_tokens,
            "timeout": request.timeout_s,
        }
        if request.top_logprobs is not None:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = request.top_logprobs
        if request.seed is not None:
            kwargs["seed"] = request.seed
        return kwargs

    async def _post(self, request: ChatRequest) -> Any:
        """POST the chat completion through the SDK's client, reading the body as plain JSON.

        The SDK still builds the request, authenticates and raises its typed
        errors for HTTP failures; skipping its response-model construction
        halves the client CPU per request (benchmarks/collect_throughput.py).
        """
        kwargs = self.request_body(request)
        timeout = kwargs.pop("timeout")
        response = await self._client.post(
            "/chat/completions",
            body=kwargs,
            cast_to=_RawResponse,
            options={"timeout": timeout},
        )
        return response.json()

    async def _send(self, request: ChatRequest) -> Any:
        try:
            return await self._post(request)
        except openai.BadRequestError as exc:
            # Newer OpenAI models refuse ``max_tokens`` and name its successor.
            text = f"{exc.message} {exc.body}"
            if self._token_param == "max_tokens" and "max_completion_tokens" in text:
                self._token_param = "max_completion_tokens"
                return await self._post(request)
            raise

    def _read(self, raw: Any, request: ChatRequest) -> ChatResult:
        if not isinstance(raw, Mapping):
            raise BackendError(malformed("response body is not a JSON object", self.secrets))
        error = error_in_body(raw, self.secrets)
        if error is not None:
            raise BackendError(error)
        choices = _field(raw, "choices")
        if not isinstance(choices, list) or not choices:
            raise BackendError(malformed("response has no choices", self.secrets))
        choice = choices[0]
        message = _field(choice, "message")
        if message is None:
            raise BackendError(malformed("response choice has no message", self.secrets))
        content = _field(message, "content")
        if content is None:
            refusal = _field(message, "refusal")
            content = refusal if isinstance(refusal, str) else ""
        if not isinstance(content, str):
            raise BackendError(malformed("response message content is not text", self.secrets))
        finish = _field(choice, "finish_reason")
        usage = _field(raw, "usage")
        top: list[tuple[str, float]] | None = None
        if request.top_logprobs is not None:
            top = self._top_logprobs(choice)
        return ChatResult(
            text=content,
            top_logprobs=top,
            prompt_tokens=int(_field(usage, "prompt_tokens") or 0),
            completion_tokens=int(_field(usage, "completion_tokens") or 0),
            finish_reason=str(finish) if finish is not None else None,
        )

    def _top_logprobs(self, choice: Any) -> list[tuple[str, float]]:
        logprobs = _field(choice, "logprobs")
        if logprobs is None:
            raise BackendError(
                Fatal(
                    f"{self.provider} at {self.base_url} returned no logprobs for "
                    f"{self.spec.full}; use --method sample with this model or server"
                )
            )
        content = _field(logprobs, "content")
        if not isinstance(content, list) or not content:
            raise BackendError(BadAnswer("response has no logprobs for the first token"))
        first = _field(content[0], "top_logprobs")
        if not isinstance(first, list):
            raise BackendError(BadAnswer("response has no top_logprobs for the first token"))
        out: list[tuple[str, float]] = []
        for entry in first:
            token = _field(entry, "token")
            logprob = _field(entry, "logprob")
            if not isinstance(token, str) or not isinstance(logprob, int | float):
                raise BackendError(BadAnswer("a top_logprobs entry lacks its token or logprob"))
            out.append((token, float(logprob)))
        if not out:
            # A server that ignores top_logprobs still gives the chosen token.
            token = _field(content[0], "token")
            logprob = _field(content[0], "logprob")
            if isinstance(token, str) and isinstance(logprob, int | float):
                out.append((token, float(logprob)))
        return out

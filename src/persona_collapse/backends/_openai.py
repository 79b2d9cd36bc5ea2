"""OpenAI-compatible chat completions over the official ``openai`` SDK.

One class serves OpenAI, OpenRouter, Together, DeepSeek, xAI and any
self-hosted OpenAI-compatible server (vLLM, Ollama, llama.cpp) by base URL.
The SDK's own retries are off: the runner owns retries and rate limiting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2
import openai

from ._backend import BatchItem, BatchLimits, BatchStatus
from ._decisions import (
    Where,
    decision_for_status,
    error_in_body,
    is_provider_host,
    malformed,
    one_line,
    redact,
)
from ._sdk import SDKBackend
from ._types import (
    BackendError,
    BadAnswer,
    ChatRequest,
    ChatResult,
    Fatal,
    ModelSpec,
    Retry,
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


def _field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``; ``None`` when absent (SDK objects are not validated)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _headers(exc: BaseException) -> Mapping[str, str] | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if headers is not None else None


def decision_for_openai_error(
    exc: BaseException, where: Where, secrets: tuple[str, ...] = ()
) -> RetryDecision | None:
    """The decision for an exception of the ``openai`` SDK; ``None`` for any other exception.

    ``APITimeoutError`` -> Retry timeout; ``APIConnectionError`` -> Retry
    transient; ``APIResponseValidationError`` -> Retry malformed; an HTTP status
    error -> :func:`decision_for_status` (429 rate limit with Retry-After, 5xx /
    408 / 409 transient, 401 / 403 / 404 / other 4xx fatal).
    """
    if isinstance(exc, openai.APITimeoutError):
        return Retry("timeout", detail=f"no answer from {where.base_url} in time")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        why = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        return Retry("transient", detail=one_line(redact(f"connection failed ({why})", secrets)))
    if isinstance(exc, openai.APIResponseValidationError):
        return malformed(f"response does not follow the API schema: {exc.message}", secrets)
    if isinstance(exc, openai.APIStatusError):
        return decision_for_status(
            exc.status_code,
            headers=_headers(exc),
            body=exc.body,
            message=exc.message,
            where=where,
            secrets=secrets,
        )
    if isinstance(exc, openai.APIError):
        return Retry("transient", detail=one_line(redact(f"{type(exc).__name__}: {exc}", secrets)))
    if isinstance(exc, openai.OpenAIError):
        return Fatal(one_line(redact(f"OpenAI SDK error for {where.model}: {exc}", secrets)))
    return None


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
        super().__init__(spec, base_url=base_url, api_key=api_key, key_env=key_env)
        self._token_param = "max_tokens"
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=timeout_s,
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.spec.full!r}, base_url={self.base_url!r})"

    @property
    def supports_logprobs(self) -> bool:
        return True

    def describe(self) -> str:
        """One line naming the model and the server (never the key)."""
        return f"{self.spec.full} via {self.provider} at {self.base_url} (OpenAI chat completions)"

    # -- SDK hooks ------------------------------------------------------------------

    def _is_connection_error(self, exc: BaseException) -> bool:
        return isinstance(exc, openai.APIConnectionError) and not isinstance(
            exc, openai.APITimeoutError
        )

    def _is_status_error(self, exc: BaseException) -> bool:
        return isinstance(exc, openai.APIStatusError)

    def _decide(self, exc: BaseException) -> RetryDecision | None:
        return decision_for_openai_error(exc, self._where, self.secrets)

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
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
        kwargs = self._kwargs(request)
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

    # -- Batch API ----------------------------------------------------------------

    @property
    def supports_batch(self) -> bool:
        """True for ``openai/`` (OpenAI, or a compatible server with /v1/files and /v1/batches)."""
        return self.spec.family == "openai"

    @property
    def batch_limits(self) -> BatchLimits:
        """OpenAI's limits: 50,000 requests and 200 MB of input file per batch."""
        return BatchLimits(50_000, 200 * 1024 * 1024)

    def batch_line(self, custom_id: str, request: ChatRequest) -> dict[str, Any]:
        """``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``."""
        body = self._kwargs(request)
        body.pop("timeout", None)
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": body,
        }

    async def _batch_call(self, coro: Any) -> Any:
        try:
            return await coro
        except BackendError:
            raise
        except Exception as exc:
            raise self._fail(self.decision_for(exc)) from None

    async def batch_submit(
        self, lines: Sequence[Mapping[str, Any]], metadata: Mapping[str, str]
    ) -> str:
        """Upload the JSONL (``files.create``, purpose batch) and create the batch."""
        return await self.batch_create(lines, await self.batch_prepare(lines), metadata)

    async def batch_prepare(self, lines: Sequence[Mapping[str, Any]]) -> str | None:
        """Upload the JSONL (``files.create``, purpose batch); returns the input file's id."""
        data = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        upload = await self._batch_call(
            self._client.files.create(
                file=("batch.jsonl", data.encode("utf-8"), "application/jsonl"), purpose="batch"
            )
        )
        return str(upload.id)

    async def batch_create(
        self,
        lines: Sequence[Mapping[str, Any]],
        prepared: str | None,
        metadata: Mapping[str, str],
    ) -> str:
        """``batches.create`` from the uploaded input file ``prepared``."""
        if prepared is None:
            prepared = await self.batch_prepare(lines)
        batch = await self._batch_call(
            self._client.batches.create(
                input_file_id=str(prepared),
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata=dict(metadata),
            )
        )
        return str(batch.id)

    async def batch_find(self, prepared: str | None, n_requests: int, since: float) -> list[str]:
        """Every batch (``batches.list``, all pages) whose ``input_file_id`` is ``prepared``."""
        if prepared is None:
            return []

        async def scan() -> list[str]:
            found: list[str] = []
            async for batch in self._client.batches.list(limit=100):
                if batch.input_file_id == prepared:
                    found.append(str(batch.id))
            return found

        found: list[str] = await self._batch_call(scan())
        return found

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """``batches.retrieve``: ended when completed, failed, expired or cancelled."""
        batch = await self._batch_call(self._client.batches.retrieve(batch_id))
        counts = batch.request_counts
        done = int((counts.completed + counts.failed) if counts is not None else 0)
        total = int(counts.total if counts is not None else 0)
        state = str(batch.status)
        ended = state in ("completed", "failed", "expired", "cancelled")
        return BatchStatus(batch_id, state, ended, done, total)

    async def batch_results(self, batch_id: str) -> list[BatchItem]:
        """The output and error files' lines (``files.content``); none for a failed batch."""
        batch = await self._batch_call(self._client.batches.retrieve(batch_id))
        items: list[BatchItem] = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._batch_call(self._client.files.content(file_id))
            for raw in content.text.splitlines():
                if raw.strip():
                    items.append(self._batch_item(raw))
        return items

    def _batch_item(self, raw: str) -> BatchItem:
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            return BatchItem("", 0, None)
        custom_id = str(_field(line, "custom_id") or "")
        response = _field(line, "response")
        if response is None:
            return BatchItem(custom_id, 0, _field(line, "error"))
        status = _field(response, "status_code")
        return BatchItem(
            custom_id, int(status) if isinstance(status, int) else 0, _field(response, "body")
        )

    async def aclose(self) -> None:
        await self._client.close()

"""Anthropic's Messages API over the official ``anthropic`` SDK.

Anthropic returns no logprobs: a logprob request is refused with one line.
The SDK's own retries are off: the runner owns retries and rate limiting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anthropic

from ._backend import BatchItem, BatchLimits, BatchStatus
from ._decisions import Where, decision_for_status, error_in_body, malformed, one_line, redact
from ._sdk import SDKBackend
from ._types import (
    BackendError,
    ChatRequest,
    ChatResult,
    Fatal,
    ModelSpec,
    Retry,
    RetryDecision,
)

CLOCK_SLACK_S = 5.0
"""Seconds the provider's clock may run behind ours when matching a batch by creation time."""


DEFAULT_BASE_URL = "https://api.anthropic.com"
NO_LOGPROBS = "Anthropic's API returns no logprobs; use --method sample"


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def decision_for_anthropic_error(
    exc: BaseException, where: Where, secrets: tuple[str, ...] = ()
) -> RetryDecision | None:
    """The decision for an exception of the ``anthropic`` SDK; ``None`` for any other.

    Timeouts -> Retry timeout; connection errors -> Retry transient; 429 ->
    Retry rate_limit with Retry-After; 5xx including 529 (overloaded), 408, 409
    -> Retry transient; 401 / 403 / 404 / other 4xx -> Fatal.
    """
    if isinstance(exc, anthropic.APITimeoutError):
        return Retry("timeout", detail=f"no answer from {where.base_url} in time")
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        why = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        return Retry("transient", detail=one_line(redact(f"connection failed ({why})", secrets)))
    if isinstance(exc, anthropic.APIResponseValidationError):
        return malformed(f"response does not follow the API schema: {exc.message}", secrets)
    if isinstance(exc, anthropic.APIStatusError):
        response = getattr(exc, "response", None)
        return decision_for_status(
            exc.status_code,
            headers=getattr(response, "headers", None),
            body=exc.body,
            message=exc.message,
            where=where,
            secrets=secrets,
        )
    if isinstance(exc, anthropic.APIError):
        return Retry("transient", detail=one_line(redact(f"{type(exc).__name__}: {exc}", secrets)))
    if isinstance(exc, anthropic.AnthropicError):
        return Fatal(one_line(redact(f"Anthropic SDK error for {where.model}: {exc}", secrets)))
    return None


class AnthropicBackend(SDKBackend):
    """A Claude model behind Anthropic's Messages API (or a compatible server at ``base_url``).

    Temperature is sent in the request body (this SDK version has no named
    parameter for it); a leading system message becomes the ``system`` field.
    """

    provider = "Anthropic"
    url_hint = "the API root without /v1 (e.g. https://api.anthropic.com)"

    def __init__(
        self,
        spec: ModelSpec,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str,
        key_env: str | None = "ANTHROPIC_API_KEY",
        timeout_s: float = 60.0,
    ) -> None:
        super().__init__(spec, base_url=base_url, api_key=api_key, key_env=key_env)
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=timeout_s,
        )

    def __repr__(self) -> str:
        return f"AnthropicBackend({self.spec.full!r}, base_url={self.base_url!r})"

    def describe(self) -> str:
        """One line naming the model and the server (never the key)."""
        return f"{self.spec.full} via Anthropic Messages API at {self.base_url} (no logprobs)"

    def _is_connection_error(self, exc: BaseException) -> bool:
        return isinstance(exc, anthropic.APIConnectionError) and not isinstance(
            exc, anthropic.APITimeoutError
        )

    def _is_status_error(self, exc: BaseException) -> bool:
        return isinstance(exc, anthropic.APIStatusError)

    def _decide(self, exc: BaseException) -> RetryDecision | None:
        return decision_for_anthropic_error(exc, self._where, self.secrets)

    async def complete(self, request: ChatRequest) -> ChatResult:
        if request.top_logprobs is not None:
            raise BackendError(Fatal(NO_LOGPROBS))
        return await super().complete(request)

    def _params(self, request: ChatRequest) -> dict[str, Any]:
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
        kwargs = self._params(request)
        kwargs["extra_body"] = {"temperature": kwargs.pop("temperature")}
        kwargs["timeout"] = request.timeout_s
        return await self._client.messages.create(**kwargs)

    # -- Message Batches --------------------------------------------------------

    @property
    def supports_batch(self) -> bool:
        """True: Anthropic's Message Batches."""
        return True

    @property
    def batch_limits(self) -> BatchLimits:
        """Anthropic's limits: 100,000 requests and 256 MB per batch."""
        return BatchLimits(100_000, 256 * 1024 * 1024)

    def batch_line(self, custom_id: str, request: ChatRequest) -> dict[str, Any]:
        """``{"custom_id", "params"}`` (custom ids: 1-64 of ``[A-Za-z0-9_-]``)."""
        if request.top_logprobs is not None:
            raise BackendError(Fatal(NO_LOGPROBS))
        return {"custom_id": custom_id, "params": self._params(request)}

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
        """``messages.batches.create`` (metadata is not sent: the API takes none)."""
        batch = await self._batch_call(
            self._client.messages.batches.create(requests=[dict(line) for line in lines])  # type: ignore[misc]
        )
        return str(batch.id)

    async def batch_find(self, prepared: str | None, n_requests: int, since: float) -> list[str]:
        """Batches (``messages.batches.list``, all pages) created at or after ``since``
        (less :data:`CLOCK_SLACK_S`) holding ``n_requests`` requests: the API keeps
        no metadata, so a count and a time are all a restart can match on."""

        async def scan() -> list[str]:
            found: list[str] = []
            async for batch in self._client.messages.batches.list(limit=100):
                counts = batch.request_counts
                total = (
                    counts.processing
                    + counts.succeeded
                    + counts.errored
                    + counts.canceled
                    + counts.expired
                )
                created = batch.created_at.timestamp()
                if total == n_requests and created >= since - CLOCK_SLACK_S:
                    found.append(str(batch.id))
            return found

        found: list[str] = await self._batch_call(scan())
        return found

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """``messages.batches.retrieve``: ended when ``processing_status`` is ``ended``."""
        batch = await self._batch_call(self._client.messages.batches.retrieve(batch_id))
        counts = batch.request_counts
        done = int(counts.succeeded + counts.errored + counts.canceled + counts.expired)
        total = done + int(counts.processing)
        state = str(batch.processing_status)
        return BatchStatus(batch_id, state, state == "ended", done, total)

    async def batch_results(self, batch_id: str) -> list[BatchItem]:
        """``messages.batches.results``: succeeded -> 200, errored -> its status, else 0."""
        stream = await self._batch_call(self._client.messages.batches.results(batch_id))
        items: list[BatchItem] = []
        async for entry in stream:
            result = entry.result
            kind = result.type
            if kind == "succeeded":
                items.append(BatchItem(entry.custom_id, 200, result.message.model_dump()))
            elif kind == "errored":
                error = result.error.model_dump()
                inner = (error.get("error") or {}).get("type", "")
                status = 400 if inner == "invalid_request_error" else 500
                items.append(BatchItem(entry.custom_id, status, error))
            else:  # expired, canceled
                items.append(BatchItem(entry.custom_id, 0, {"type": kind}))
        return items

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

    async def aclose(self) -> None:
        await self._client.close()

"""What the two HTTP SDK backends share: the request template, first contact, ``check``.

A subclass sends one request with its SDK (``_send``), reads the SDK's answer
(``_read``) and maps the SDK's exceptions to decisions (``_decide``); this
class turns those into :class:`ChatResult` or :class:`BackendError`, keeps the
API key out of every message and knows whether the server has ever answered.

A 200 whose body cannot be read (cut-off JSON, an HTML page, an error object)
is a transport fault, ``Retry("malformed")``, never a protocol attempt. The
API key is also taken out of every answer's text (a server or model that
echoes it back must not get it into a store).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

from ._backend import Backend
from ._batch_api import BatchAPI, BatchItem
from ._decisions import SDKErrors, Where, decision_for_status, malformed, one_line, redact
from ._registry import FAMILIES
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

#: Connection failures tolerated before the server has answered even once; after
#: that many a run to an unreachable URL ends instead of retrying forever.
FIRST_CONTACT_TRIES = 3
#: Exceptions raised while reading a 200 body that the SDK could not decode.
_DECODE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)


def _is_http_library_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the HTTP layer under the SDK (httpx / httpcore)."""
    module = type(exc).__module__ or ""
    return module.split(".", 1)[0] in ("httpx", "httpx2", "httpcore", "httpcore2", "h11")


class SDKBackend(Backend):
    """Base of the SDK backends (OpenAI-compatible, Anthropic). Not used directly.

    Overrides of the :class:`Backend` defaults: :attr:`secrets` (the API key),
    :meth:`check` (one real one-token request) and :meth:`complete`.
    """

    #: Name of the provider in messages (e.g. ``OpenAI``).
    provider = "the server"
    #: How a correct base URL looks, for messages about 404s.
    url_hint = "the API root (often ending in /v1)"
    #: The SDK's exception types (each subclass names its SDK's).
    sdk_errors: SDKErrors
    #: The SDK's async client class (``openai.AsyncOpenAI``, ``anthropic.AsyncAnthropic``).
    client_class: Callable[..., Any]
    #: The provider's batch capability, offered as :attr:`batch` where the family's registry
    #: entry says the provider has one (None: it has none).
    batch_class: type[BatchAPI] | None = None

    def __init__(
        self,
        spec: ModelSpec,
        *,
        base_url: str,
        api_key: str,
        key_env: str | None,
        timeout_s: float,
    ) -> None:
        super().__init__(spec)
        self._api_key = api_key
        self.base_url = base_url
        self.key_env = key_env
        self._where = Where(
            model=spec.full,
            base_url=base_url,
            key_env=key_env,
            provider=self.provider,
            url_hint=self.url_hint,
        )
        self._contacted = False
        self._early_connection_errors = 0
        # The SDK's own retries are off: the runner owns retries and rate limiting.
        self._client: Any = self.client_class(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s
        )
        self._batch_api: BatchAPI | None = None

    # -- subclass hooks ---------------------------------------------------------

    @abstractmethod
    async def _send(self, request: ChatRequest) -> Any:
        """Send one request with the SDK; returns the SDK's raw answer."""

    @abstractmethod
    def _read(self, raw: Any, request: ChatRequest) -> ChatResult:
        """The :class:`ChatResult` in a raw answer (raises :class:`BackendError` or a decode error)."""

    @abstractmethod
    def _decide(self, exc: BaseException) -> RetryDecision | None:
        """The decision for an SDK exception, or ``None`` if it is not the SDK's."""

    def _is_connection_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` means no HTTP response came back (not a timeout)."""
        return isinstance(exc, self.sdk_errors.connection) and not isinstance(
            exc, self.sdk_errors.timeout
        )

    def _is_status_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` carries an HTTP status (the server answered)."""
        return isinstance(exc, self.sdk_errors.status)

    # -- shared -------------------------------------------------------------------

    @property
    def secrets(self) -> tuple[str, ...]:
        """The API key: kept out of every message."""
        return (self._api_key,)

    def _fail(self, decision: RetryDecision) -> BackendError:
        return BackendError(decision)

    def failure(self, exc: BaseException) -> BackendError:
        """The :class:`BackendError` (with its decision) for an exception of this client."""
        return self._fail(self.decision_for(exc))

    def _unreachable(self, exc: BaseException) -> Fatal:
        cause = exc.__cause__ or exc.__context__
        why = one_line(
            redact(f"{type(cause).__name__}: {cause}" if cause else str(exc), self.secrets)
        )
        return Fatal(
            f"cannot reach {self.base_url} for {self._where.model} ({why}); "
            "check the base URL (--base-url) and that the server is running"
        )

    def decision_for(self, exc: BaseException) -> RetryDecision:
        """The decision for any exception raised while sending or reading one request."""
        if self._is_status_error(exc):
            self._contacted = True
        if self._is_connection_error(exc) and not self._contacted:
            self._early_connection_errors += 1
            if self._early_connection_errors >= FIRST_CONTACT_TRIES:
                return self._unreachable(exc)
        decision = self._decide(exc)
        if decision is not None:
            return decision
        if isinstance(exc, _DECODE_ERRORS):
            return malformed(
                f"unreadable response body ({type(exc).__name__}: {exc})", self.secrets
            )
        if _is_http_library_error(exc):
            return Retry(
                "transient", detail=one_line(redact(f"{type(exc).__name__}: {exc}", self.secrets))
            )
        return Fatal(
            one_line(
                redact(
                    f"unexpected {type(exc).__name__} from {self.provider} for "
                    f"{self._where.model}: {exc}",
                    self.secrets,
                )
            )
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Answer one request or raise :class:`BackendError` with the runner's decision."""
        try:
            raw = await self._send(request)
        except asyncio.CancelledError:
            raise
        except BackendError:
            raise
        except Exception as exc:
            raise self._fail(self.decision_for(exc)) from None
        self._contacted = True
        return self._answer(raw, request, "response")

    def read_batch_item(self, item: BatchItem, request: ChatRequest) -> ChatResult:
        """The answer of one batch result line, judged as the same direct answer would be.

        Status 200: the body is read as a direct answer (an unreadable one is
        ``Retry("malformed")``, a transport fault); another status: the
        decision that status gets on a direct request (5xx and 429 retried,
        4xx fatal); status 0 (expired, cancelled, never answered): a transient
        retry.
        """
        if item.status == 0:
            raise self._fail(Retry("transient", detail="batch request not answered (expired)"))
        if item.status != 200:
            raise self._fail(
                decision_for_status(
                    item.status,
                    headers=None,
                    body=item.body,
                    message=f"batch request {item.custom_id} failed",
                    where=self._where,
                    secrets=self.secrets,
                )
            )
        return self._answer(item.body, request, "batch answer")

    def _answer(self, raw: Any, request: ChatRequest, what: str) -> ChatResult:
        """``raw`` read as the answer to ``request``, the API key taken out of its text; a body
        that cannot be decoded is ``Retry("malformed")`` naming ``what`` it was."""
        try:
            result = self._read(raw, request)
        except BackendError:
            raise
        except _DECODE_ERRORS as exc:
            raise self._fail(
                malformed(f"unreadable {what} ({type(exc).__name__}: {exc})", self.secrets)
            ) from None
        return self._redacted(result)

    @property
    def batch(self) -> BatchAPI | None:
        """The provider's batch API (:attr:`batch_class`, made once), or None when it has none.

        The family's registry entry decides whether the provider has one
        (``FAMILIES[family].batch``: ``openai/`` and ``anthropic/``, not the other
        OpenAI-compatible families); a family outside the registry (a backend built
        directly) is decided by :attr:`batch_class` alone.
        """
        family = FAMILIES.get(self.spec.family)
        if self.batch_class is None or (family is not None and not family.batch):
            return None
        if self._batch_api is None:
            self._batch_api = self.batch_class(self)
        return self._batch_api

    async def aclose(self) -> None:
        await self._client.close()

    def _redacted(self, result: ChatResult) -> ChatResult:
        """``result`` with the API key taken out of its text (answers echoing it are stored)."""
        text = redact(result.text, self.secrets, key_shapes=False)
        return result if text == result.text else dataclasses.replace(result, text=text)

    async def check(self, *, timeout_s: float = 30.0, attempts: int = 3) -> None:
        """One cheap real request (a one-token answer) before a run starts.

        Returns when the server answered (a rate limit or an unreadable body
        also proves the URL, key and model work). Raises :class:`BackendError`
        with :class:`Fatal` when the URL cannot be reached, the key or model is
        rejected, or the server keeps failing or hanging.
        """
        probe = ChatRequest(
            messages=[{"role": "user", "content": "Reply with the digit 0."}],
            temperature=0.0,
            max_tokens=1,
            timeout_s=timeout_s,
        )
        last: RetryDecision | None = None
        for attempt in range(max(1, attempts)):
            try:
                raw = await self._send(probe)
            except asyncio.CancelledError:
                raise
            except BackendError as exc:
                last = exc.decision
            except Exception as exc:
                if self._is_connection_error(exc) and not self._contacted:
                    raise self._fail(self._unreachable(exc)) from None
                last = self.decision_for(exc)
            else:
                self._contacted = True
                # An unreadable answer still proves the server works.
                with contextlib.suppress(Exception):
                    self._read(raw, probe)
                return
            if isinstance(last, Fatal):
                raise self._fail(last)
            if isinstance(last, BadAnswer) or (
                # A rate limit or a broken 200 body still proves URL, key and model work;
                # the run's transport retries those.
                isinstance(last, Retry) and last.kind in ("rate_limit", "malformed")
            ):
                return
            if attempt + 1 < attempts:
                await asyncio.sleep(min(2.0, 0.25 * 2**attempt))
        assert isinstance(last, Retry)
        what = (
            "did not answer in time" if last.kind == "timeout" else f"kept failing ({last.detail})"
        )
        raise self._fail(
            Fatal(
                f"{self.provider} at {self.base_url} {what} for {self._where.model} "
                f"after {attempts} tries; check the server, or try again later"
            )
        )

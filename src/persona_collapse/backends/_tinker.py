"""``tinker/MODEL``: sampling from Tinker (Thinking Machines) through the official ``tinker`` SDK.

``MODEL`` is a base model name (``tinker/Qwen/Qwen3-8B``) or saved sampler
weights (``tinker/tinker://RUN-ID/sampler_weights/NAME``, as printed by
``persona-collapse finetune tinker/...``). Needs the ``tinker`` extra and a
Tinker credential: ``TINKER_API_KEY`` (or ``--api-key``,
``TINKER_CREDENTIAL_CMD``, or a key stored by ``tinker auth login``).

Chats are rendered with the model's own chat template (the tokenizer the
sampling client reports) and sent as token ids. Logprob requests ask for the
top-``k`` logprobs of the first sampled token (``topk_sample_logprobs``);
tokens are decoded to text so the protocol can sum spellings of a digit.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..errors import ConfigError
from ._backend import Backend
from ._types import BackendError, ChatRequest, ChatResult, Fatal, ModelSpec, Retry, RetryDecision

__all__ = ["TinkerBackend", "require_tinker_credentials", "tinker_decision"]

_MISSING_KEY = (
    "tinker/ needs a Tinker API key: set TINKER_API_KEY (or run 'tinker auth login', "
    "or set TINKER_CREDENTIAL_CMD)"
)


def require_tinker_credentials(api_key: str | None = None) -> None:
    """Raise a one-line :class:`ConfigError` when no Tinker credential can be found.

    Checked before any network use: an explicit key, ``TINKER_API_KEY``,
    ``TINKER_CREDENTIAL_CMD`` or the SDK's stored default key.
    """
    import os

    if (api_key or "").strip() or os.environ.get("TINKER_API_KEY", "").strip():
        return
    if os.environ.get("TINKER_CREDENTIAL_CMD", "").strip():
        return
    try:
        from tinker.lib._auth_token_provider import ApiKeyAuthProvider
    except ImportError:  # pragma: no cover - SDK layout changed: let the SDK decide
        return
    try:
        stored = ApiKeyAuthProvider.create_from_stored()
    except Exception:
        stored = None
    if stored is None:
        raise ConfigError(_MISSING_KEY)


def tinker_decision(exc: BaseException) -> RetryDecision | None:
    """The runner's decision for a ``tinker`` SDK exception (None if it is not one)."""
    import tinker

    if isinstance(exc, tinker.RateLimitError):
        return Retry("rate_limit", detail="Tinker rate limit")
    if isinstance(exc, tinker.APITimeoutError):
        return Retry("timeout", detail="Tinker request timed out")
    if isinstance(exc, tinker.APIConnectionError | tinker.InternalServerError):
        return Retry("transient", detail=f"{type(exc).__name__} from Tinker")
    if isinstance(exc, tinker.AuthenticationError | tinker.PermissionDeniedError):
        return Fatal("Tinker rejected the credential: check TINKER_API_KEY")
    if isinstance(exc, tinker.BillingError):
        return Fatal("Tinker refused the request for billing reasons: check your account")
    if isinstance(exc, tinker.NotFoundError):
        return Fatal("Tinker does not know this model or weights path: check the name")
    if isinstance(exc, tinker.BadRequestError | tinker.UnprocessableEntityError):
        return Fatal(f"Tinker refused the request: {str(exc).splitlines()[0][:200]}")
    if isinstance(exc, tinker.TinkerError):
        return Retry("transient", detail=f"{type(exc).__name__} from Tinker")
    return None


class TinkerBackend(Backend):
    """A Tinker sampling client behind the backend interface (see the module docs).

    Overrides of the :class:`Backend` defaults: :attr:`supports_logprobs`
    (true, top-k), :meth:`describe` and :meth:`aclose` (ends the session).
    :meth:`check` keeps the default: the client is made on the first request.
    """

    def __init__(self, spec: ModelSpec, *, seed: int = 0, api_key: str | None = None) -> None:
        require_tinker_credentials(api_key)
        super().__init__(spec)
        self.seed = int(seed)
        self._api_key = api_key
        self._service: Any = None
        self._client: Any = None
        self._tokenizer: Any = None
        self._lock = asyncio.Lock()

    @property
    def supports_logprobs(self) -> bool:
        return True

    def describe(self) -> str:
        return f"{self.spec.full} (Tinker sampling client)"

    async def _ensure(self) -> tuple[Any, Any]:
        async with self._lock:
            if self._client is None:
                import tinker

                self._service = tinker.ServiceClient(api_key=self._api_key)
                name = self.spec.name
                if name.startswith("tinker://"):
                    future = self._service.create_sampling_client(model_path=name)
                else:
                    future = self._service.create_sampling_client(base_model=name)
                self._client = await future
                self._tokenizer = self._client.get_tokenizer()
            return self._client, self._tokenizer

    def prompt_tokens(self, tokenizer: Any, request: ChatRequest) -> list[int]:
        """The chat rendered with the generation prompt, as token ids."""
        ids = tokenizer.apply_chat_template(
            list(request.messages), add_generation_prompt=True, tokenize=True
        )
        if hasattr(ids, "keys") and "input_ids" in ids:
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Sample one answer (and the first token's top-k logprobs when asked)."""
        try:
            import tinker

            client, tokenizer = await self._ensure()
            tokens = self.prompt_tokens(tokenizer, request)
            params = tinker.SamplingParams(
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                seed=request.seed if request.seed is not None else self.seed,
            )
            response = await client.sample(
                prompt=tinker.ModelInput.from_ints(tokens),
                num_samples=1,
                sampling_params=params,
                topk_sample_logprobs=int(request.top_logprobs or 0),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            decision = tinker_decision(exc)
            if decision is None:
                raise
            raise BackendError(decision) from None
        sequence = response.sequences[0]
        text = tokenizer.decode(sequence.tokens, skip_special_tokens=True)
        top: list[tuple[str, float]] | None = None
        if request.top_logprobs:
            first = (sequence.topk_logprobs or [None])[0] or []
            top = [(tokenizer.decode([int(t)]), float(lp)) for t, lp in first]
        return ChatResult(
            text=text,
            top_logprobs=top,
            prompt_tokens=len(tokens),
            completion_tokens=len(sequence.tokens),
            finish_reason="length" if str(sequence.stop_reason) == "length" else "stop",
        )

    async def aclose(self) -> None:
        service, self._service, self._client = self._service, None, None
        if service is not None:
            with contextlib.suppress(Exception):  # best effort; the session expires anyway
                await service.close("success")

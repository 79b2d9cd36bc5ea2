"""``hf/MODEL``: a local HuggingFace transformers model behind the backend interface.

``MODEL`` is a folder written by ``save_pretrained`` (``hf//abs/path``,
``hf/./rel/path``) or a hub id (``hf/Qwen/Qwen2.5-0.5B-Instruct``); with
``HF_HUB_OFFLINE=1`` only local files are read. Needs the ``hf`` extra
(``torch``, ``transformers``, ``tokenizers``), imported only when this backend is used.

Requests are micro-batched (:class:`._hf_batch.MicroBatcher`): every request
queued while the previous batch ran (up to ``max_batch_size``) goes into one
left-padded batch, run in a single worker thread so the event loop stays
free. Shared prompt prefixes (the chat header and persona text common to a
persona's 30 items) are computed once and reused from a KV cache
(``prefix_cache``); see :mod:`._hf_engine`.

Answers:

* Logprob requests (``top_logprobs`` set): ``ChatResult.top_logprobs`` is
  EXACT over the whole vocabulary, not a top-k list: one ``(token text,
  log p)`` entry for EVERY vocabulary token that spells a digit ``0``-``9``
  (``"3"`` and ``" 3"`` are separate entries, most likely first), ``p`` being
  the softmax probability at T = 1 computed in float64; then one
  ``("<other>", log(1 - sum))`` entry with all remaining mass; then a
  ``("<exact>", -inf)`` marker with probability 0. Read with
  :func:`persona_collapse.protocol.digit_distribution` (which sums the
  spellings), this gives the exact renormalised distribution over the scale,
  ``other_mass`` = probability of every other token (digits off the scale
  included) and ``floor_mass = 0`` (no value was cut off by a top-k). The
  requested ``k`` is ignored. ``text`` is one token drawn at the request's
  temperature.
* Sampling requests: up to ``max_tokens`` tokens drawn at ``temperature``
  (0 = greedy), stopping at an end-of-sequence token, with a
  ``torch.Generator`` seeded from (backend seed, ``ChatRequest.seed``), so
  repetitions with different seeds differ and a repeated request is
  reproducible (up to float differences between batch compositions).

Options (constructor keywords, else environment variables):
``PERSONA_COLLAPSE_HF_DEVICE``, ``PERSONA_COLLAPSE_HF_DTYPE`` (see
:mod:`._hf_load`), ``PERSONA_COLLAPSE_HF_PREFIX_CACHE`` (``0`` turns prefix
reuse off), ``PERSONA_COLLAPSE_HF_BATCH`` (largest batch, default 32).
Batches are never larger than the runner's ``--concurrency``: raise it (e.g.
``--concurrency 32``) to fill a GPU. Within a batch, the positions per forward
pass are chosen by measured throughput (:mod:`._hf_tune`) unless the
``forward_positions`` keyword fixes them.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError
from ._backend import Backend
from ._hf_batch import MicroBatcher, check_decoding
from ._hf_engine import EngineRequest, EngineResult, HFEngine
from ._hf_load import load_hf
from ._types import BackendError, ChatRequest, ChatResult, Fatal, ModelSpec, Retry

__all__ = [
    "BATCH_ENV",
    "EXACT_MARKER",
    "OTHER_TOKEN",
    "PREFIX_CACHE_ENV",
    "HFBackend",
    "exact_top_logprobs",
]

PREFIX_CACHE_ENV = "PERSONA_COLLAPSE_HF_PREFIX_CACHE"
BATCH_ENV = "PERSONA_COLLAPSE_HF_BATCH"
#: Token text of the entry carrying every non-digit probability.
OTHER_TOKEN = "<other>"
#: Token text of the zero-probability entry that marks a list as exhaustive.
EXACT_MARKER = "<exact>"


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={value!r} is not a yes/no value; use 1 or 0")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer") from None
    if number < 1:
        raise ConfigError(f"{name} must be at least 1")
    return number


def _mix_seed(base: int, seed: int | None, counter: int) -> int:
    """A 63-bit generator seed from the backend seed and the request seed (else a counter)."""
    words = [
        int(base) % 2**32,
        0 if seed is None else 1,
        int(counter if seed is None else seed) % 2**63,
    ]
    state = np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)
    return int(state[0]) & 0x7FFFFFFFFFFFFFFF


def exact_top_logprobs(result: EngineResult) -> list[tuple[str, float]]:
    """The ``top_logprobs`` list of a logprob answer (see the module docs)."""
    assert result.spellings is not None
    entries = list(result.spellings)
    if result.other_logprob is not None:
        entries.append((OTHER_TOKEN, result.other_logprob))
    entries.append((EXACT_MARKER, float("-inf")))
    return entries


class HFBackend(Backend):
    """A local transformers causal LM (``hf/MODEL``); see the module docs.

    Overrides of the :class:`Backend` defaults: :attr:`supports_logprobs`
    (true, exact), :attr:`preferred_concurrency` (one full batch),
    :meth:`describe` (device, dtype, cache) and :meth:`aclose` (stops the batch
    worker). :meth:`check` keeps the default: the model was loaded when the
    backend was made.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        seed: int = 0,
        prefix_cache: bool | None = None,
        max_batch_size: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        cache_tokens: int = 16384,
        forward_positions: int | None = None,
    ) -> None:
        super().__init__(spec)
        self.seed = int(seed)
        batch = int(max_batch_size) if max_batch_size is not None else _env_int(BATCH_ENV, 32)
        if batch < 1:
            raise ConfigError("max_batch_size must be at least 1")
        use_cache = _env_flag(PREFIX_CACHE_ENV, True) if prefix_cache is None else prefix_cache
        self.loaded = load_hf(spec.name, device=device, dtype=dtype)
        self.engine = HFEngine(
            self.loaded,
            prefix_cache=use_cache,
            cache_tokens=cache_tokens,
            forward_positions=forward_positions,
        )
        self.batcher: MicroBatcher[ChatRequest, ChatResult] = MicroBatcher(
            self._process, self._on_error, max_batch=batch, thread_name="hf-backend"
        )
        self._counter = 0

    def __repr__(self) -> str:
        return (
            f"HFBackend({self.spec.full!r}, device={self.loaded.device}, "
            f"prefix_cache={self.prefix_cache})"
        )

    @property
    def supports_logprobs(self) -> bool:
        return True

    @property
    def prefix_cache(self) -> bool:
        """Whether shared prompt prefixes are reused (off for models without a plain KV cache)."""
        return self.engine.prefix_cache

    @property
    def max_batch_size(self) -> int:
        return self.batcher.max_batch

    @property
    def preferred_concurrency(self) -> int:
        """Requests worth keeping in flight: one full batch."""
        return self.batcher.max_batch

    def describe(self) -> str:
        template = "chat template" if self.engine.has_template else "NO chat template (raw text)"
        return (
            f"{self.spec.full}: local transformers on {self.loaded.device} "
            f"({self.loaded.dtype_name}, {template}, prefix cache "
            f"{'on' if self.prefix_cache else 'off'}, batches up to {self.max_batch_size})"
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Answer ``request`` in the next batch (raises :class:`BackendError`)."""
        check_decoding(request)
        return await self.batcher.submit(request)

    # -- in the worker thread ---------------------------------------------------------

    def _process(self, batch: list[ChatRequest]) -> list[ChatResult | BaseException]:
        out: list[ChatResult | BaseException] = []
        ready: list[tuple[int, EngineRequest]] = []
        for request in batch:
            self._counter += 1
            try:
                ids = self.engine.encode(request.messages)
            except Exception as exc:  # a chat template that cannot render these messages
                out.append(
                    BackendError(Fatal(f"{self.spec.full}: cannot build the prompt ({exc})"))
                )
                continue
            if ids.size == 0:  # raw text of empty messages, without a start token
                out.append(BackendError(Fatal(f"{self.spec.full}: the prompt is empty")))
                continue
            ready.append(
                (
                    len(out),
                    EngineRequest(
                        ids=ids,
                        temperature=float(request.temperature),
                        max_tokens=int(request.max_tokens),
                        seed=_mix_seed(self.seed, request.seed, self._counter),
                        digits=request.top_logprobs is not None,
                    ),
                )
            )
            out.append(BackendError(Fatal("not answered")))  # replaced below
        results = self.engine.run([e for _, e in ready]) if ready else []
        for (slot, _), result in zip(ready, results, strict=True):
            out[slot] = self._result(batch[slot], result)
        return out

    def _on_error(self, exc: BaseException) -> BaseException:
        name = type(exc).__name__
        if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
            if self.batcher.max_batch > 1:
                self.batcher.max_batch = max(1, self.batcher.max_batch // 2)
                self.engine.cache.clear()
                return BackendError(
                    Retry(
                        "transient",
                        detail=f"out of memory; batches now up to {self.batcher.max_batch}",
                    )
                )
            return BackendError(Fatal(f"{self.spec.full}: out of memory even for one request"))
        text = str(exc).strip().splitlines()
        return BackendError(Fatal(f"{self.spec.full}: {name}: {text[0] if text else ''}"))

    def _result(self, request: ChatRequest, result: EngineResult) -> ChatResult:
        top = exact_top_logprobs(result) if request.top_logprobs is not None else None
        return ChatResult(
            text=result.text,
            top_logprobs=top,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=len(result.token_ids),
            finish_reason=result.finish_reason,
        )

    async def aclose(self) -> None:
        await self.batcher.aclose()

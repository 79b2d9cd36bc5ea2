"""``vllm/MODEL`` without ``--base-url``: an offline ``vllm.LLM`` engine in this process.

Needs the ``vllm`` extra (and a GPU vLLM supports); imported only when used.
With ``--base-url`` the ``vllm/`` family talks to a ``vllm serve`` server
through the OpenAI-compatible backend instead.

The engine is created with ``enable_prefix_caching=True`` (vLLM's automatic
prefix caching reuses the persona prefix across a persona's items) and the
seed. Requests are micro-batched like ``hf/`` (:mod:`._hf_batch`): each
batch is one ``LLM.generate`` call with one ``SamplingParams`` per request
(``temperature``, ``max_tokens``, ``seed``, and ``logprobs=k`` for logprob
requests). The prompt is the tokenizer's chat template with the generation
prompt. Logprob answers are vLLM's top-k first-token log-probabilities (the
request's ``top_logprobs``, at most the engine's ``max_logprobs``), so digits
outside the top-k are handled by the protocol like those of any top-k API.

Options (keywords, else environment variables): ``PERSONA_COLLAPSE_VLLM_TP``
(tensor-parallel size), ``PERSONA_COLLAPSE_VLLM_GPU_MEMORY`` (fraction),
``PERSONA_COLLAPSE_VLLM_BATCH`` (largest batch, default 256).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError
from ._backend import Backend
from ._hf_batch import MicroBatcher, check_decoding
from ._types import BackendError, ChatRequest, ChatResult, Fatal, ModelSpec

__all__ = ["VLLMBackend", "import_vllm"]

_INSTALL = "pip install 'persona-collapse[vllm]'"


def import_vllm() -> Any:
    """The ``vllm`` module, or a ConfigError naming the extra to install."""
    try:
        import vllm
    except ImportError as exc:
        raise ConfigError(
            f"vllm/... without --base-url runs vLLM in this process and needs the vllm extra "
            f"({exc.name or 'vllm'} is not installed): {_INSTALL}; or serve the model with "
            "`vllm serve` and pass --base-url"
        ) from None
    return vllm


def _env_number(name: str, kind: type[int] | type[float]) -> Any:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None


class VLLMBackend(Backend):
    """An offline vLLM engine (``vllm/MODEL``); see the module docs.

    Overrides of the :class:`Backend` defaults: :attr:`supports_logprobs`
    (true, top-k), :attr:`preferred_concurrency` (one full batch),
    :meth:`describe` and :meth:`aclose` (stops the batch worker). :meth:`check`
    keeps the default: the engine was started when the backend was made.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        seed: int = 0,
        tensor_parallel_size: int | None = None,
        gpu_memory_utilization: float | None = None,
        max_batch_size: int | None = None,
    ) -> None:
        vllm = import_vllm()
        super().__init__(spec)
        self.seed = int(seed)
        self._sampling_params = vllm.SamplingParams
        options: dict[str, Any] = {"enable_prefix_caching": True, "seed": self.seed}
        tp = tensor_parallel_size or _env_number("PERSONA_COLLAPSE_VLLM_TP", int)
        if tp:
            options["tensor_parallel_size"] = int(tp)
        mem = gpu_memory_utilization or _env_number("PERSONA_COLLAPSE_VLLM_GPU_MEMORY", float)
        if mem:
            options["gpu_memory_utilization"] = float(mem)
        try:
            self.llm = vllm.LLM(model=spec.name, **options)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"cannot start vLLM for {spec.full}: {first}") from None
        self.tokenizer = self.llm.get_tokenizer()
        batch = max_batch_size or _env_number("PERSONA_COLLAPSE_VLLM_BATCH", int) or 256
        self.batcher: MicroBatcher[ChatRequest, ChatResult] = MicroBatcher(
            self._process, self._on_error, max_batch=int(batch), thread_name="vllm-backend"
        )

    @property
    def supports_logprobs(self) -> bool:
        return True

    @property
    def preferred_concurrency(self) -> int:
        """Requests worth keeping in flight: one full batch."""
        return self.batcher.max_batch

    def describe(self) -> str:
        return f"{self.spec.full}: vLLM offline engine (prefix caching on)"

    async def complete(self, request: ChatRequest) -> ChatResult:
        check_decoding(request)
        return await self.batcher.submit(request)

    def _prompt(self, request: ChatRequest) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                list(request.messages), add_generation_prompt=True, tokenize=False
            )
        )

    def _params(self, request: ChatRequest) -> Any:
        return self._sampling_params(
            n=1,
            temperature=float(request.temperature),
            max_tokens=int(request.max_tokens),
            seed=None if request.seed is None else int(request.seed) ^ self.seed,
            logprobs=request.top_logprobs,
        )

    def _process(self, batch: list[ChatRequest]) -> list[ChatResult | BaseException]:
        outputs = self.llm.generate(
            [self._prompt(r) for r in batch],
            [self._params(r) for r in batch],
            use_tqdm=False,
        )
        return [self._result(r, out) for r, out in zip(batch, outputs, strict=True)]

    def _result(self, request: ChatRequest, output: Any) -> ChatResult:
        choice = output.outputs[0]
        top = None
        if request.top_logprobs is not None and choice.logprobs:
            first = choice.logprobs[0]
            top = sorted(
                ((str(lp.decoded_token), float(lp.logprob)) for lp in first.values()),
                key=lambda e: -e[1],
            )
        return ChatResult(
            text=choice.text,
            top_logprobs=top,
            prompt_tokens=len(output.prompt_token_ids or ()),
            completion_tokens=len(choice.token_ids),
            finish_reason=choice.finish_reason,
        )

    def _on_error(self, exc: BaseException) -> BaseException:
        text = (str(exc).strip().splitlines() or [""])[0]
        return BackendError(Fatal(f"{self.spec.full}: {type(exc).__name__}: {text}"))

    async def aclose(self) -> None:
        await self.batcher.aclose()

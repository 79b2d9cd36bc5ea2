"""The task, its solver (the published sampling protocol) and its scorer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
    ModelOutput,
    get_model,
)
from inspect_ai.scorer import (
    Metric,
    SampleScore,
    Score,
    Scorer,
    Target,
    mean,
    metric,
    scorer,
)
from inspect_ai.solver import Generate, Solver, TaskState, solver

from ..errors import ConfigError
from ..instruments import load_instrument
from ..personas import PERSONAHUB_COSTA, load_personas
from ..protocol import (
    MISSING_RATING,
    ChatRequest,
    ChatResult,
    Method,
    ProtocolSettings,
    Slot,
    SlotAnswer,
    SlotProtocol,
    SlotState,
)
from ..protocol import slot_prompt as _slot_prompt

TASK_NAME = "persona_collapse/mfq_personas"
"""The registered name (``inspect eval persona_collapse/mfq_personas``)."""

RATING_SCORER = "rating"
"""Name of the scorer whose value is the slot's rating (-1: missing)."""

_PUBLISHED = ProtocolSettings()


def persona_samples(
    personas: str = PERSONAHUB_COSTA,
    n_personas: int | None = None,
    *,
    instrument: str = "mfq30",
    persona_field: str | None = None,
    logprobs: bool = False,
) -> list[Sample]:
    """One sample per (persona, item): the published prompt, ids in the metadata.

    ``logprobs``: the prompt of the logprob method (with the instrument's suffix).
    """
    inst = load_instrument(instrument)
    pset = load_personas(personas, n_personas, field=persona_field)
    samples = []
    for persona_id, text in zip(pset.ids, pset.texts, strict=True):
        for item in inst.items:
            samples.append(
                Sample(
                    input=_slot_prompt(inst, item, text, logprobs=logprobs),
                    id=f"p{persona_id}-q{item.id}",
                    metadata={
                        "persona_id": int(persona_id),
                        "question_id": int(item.id),
                        "instrument": inst.name,
                    },
                )
            )
    return samples


def _chat_messages(request: ChatRequest) -> list[ChatMessage]:
    """The request's chat as inspect messages."""
    kinds: dict[str, Callable[..., ChatMessage]] = {
        "system": ChatMessageSystem,
        "user": ChatMessageUser,
        "assistant": ChatMessageAssistant,
    }
    return [kinds[m["role"]](content=m["content"]) for m in request.messages]


def _generate_config(request: ChatRequest) -> GenerateConfig:
    """The request's decoding settings (seed, logprobs) as inspect's generate config."""
    return GenerateConfig(
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        seed=request.seed,
        logprobs=True if request.top_logprobs else None,
        top_logprobs=request.top_logprobs,
    )


def _chat_result(output: ModelOutput) -> ChatResult:
    """inspect's output as a :class:`ChatResult`: text, first-token top logprobs, token usage."""
    choice = output.choices[0] if output.choices else None
    top: list[tuple[str, float]] | None = None
    if choice is not None and choice.logprobs is not None and choice.logprobs.content:
        first = choice.logprobs.content[0].top_logprobs or []
        top = [(t.token, float(t.logprob)) for t in first] or None
    usage = output.usage
    return ChatResult(
        text=output.completion,
        top_logprobs=top,
        prompt_tokens=usage.input_tokens if usage is not None else 0,
        completion_tokens=usage.output_tokens if usage is not None else 0,
        finish_reason=None if choice is None else str(choice.stop_reason),
    )


class _Protocols:
    """The :class:`SlotProtocol` of each instrument, persona texts loaded on first use."""

    def __init__(
        self,
        settings: ProtocolSettings,
        seed: int,
        personas: str,
        n_personas: int | None,
        persona_field: str | None,
    ) -> None:
        self.settings = settings
        self.seed = seed
        self.spec = (personas, n_personas, persona_field)
        self._texts: dict[int, str] | None = None
        self._by_name: dict[str, SlotProtocol] = {}

    def get(self, instrument: str) -> SlotProtocol:
        if instrument not in self._by_name:
            if self._texts is None:
                spec, n, field = self.spec
                pset = load_personas(spec, n, field=field)
                self._texts = {int(i): t for i, t in zip(pset.ids, pset.texts, strict=True)}
            self._by_name[instrument] = SlotProtocol(
                load_instrument(instrument),
                self.settings,
                seed=self.seed,
                timeout_s=60.0,
                personas=self._texts,
            )
        return self._by_name[instrument]


@solver
def published_protocol(
    temperature: float = _PUBLISHED.temperature,
    max_attempts: int = _PUBLISHED.max_attempts,
    fallback_max_tokens: int = _PUBLISHED.fallback_max_tokens,
    method: str = "sample",
    seed: int = 0,
    personas: str = PERSONAHUB_COSTA,
    n_personas: int | None = None,
    persona_field: str | None = None,
) -> Solver:
    """Ask as published, stepping the same :class:`SlotProtocol` as ``persona-collapse run``.

    Sampling: one-token answers at ``temperature`` until one is a scale digit, at
    most ``max_attempts``; then one longer generation read by the fallback
    parse. ``method="logprobs"``: one request per cell at T = 1 with top
    logprobs. Every request carries the published per-attempt seed of (``seed``,
    persona, item, epoch, attempt). ``personas``/``n_personas``/``persona_field``
    name the persona texts of the samples' ``persona_id`` (as the task's).

    Leaves ``rating`` (-1 when missing), ``failures`` (unparseable attempts),
    ``fallback``, ``raw_text``, ``distribution`` (logprobs) and ``extra`` (the
    stored row's extra fields) in the sample's store.
    """
    settings = ProtocolSettings(
        method=cast(Method, method),  # checked by ProtocolSettings (ConfigError)
        temperature=float(temperature),
        max_attempts=int(max_attempts),
        fallback_max_tokens=int(fallback_max_tokens),
    )
    protocols = _Protocols(settings, int(seed), personas, n_personas, persona_field)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        meta = state.metadata
        protocol = protocols.get(str(meta.get("instrument", "mfq30")))
        slot = Slot(int(meta["persona_id"]), int(meta["question_id"]), int(state.epoch))
        answer, output = await _ask_slot(protocol, slot)
        state.output = output
        state.messages.append(ChatMessageAssistant(content=output.completion))
        _keep(state, answer)
        return state

    return solve


async def _ask_slot(protocol: SlotProtocol, slot: Slot) -> tuple[SlotAnswer, ModelOutput]:
    """Step ``slot``'s protocol to its end through inspect's model; the answer and last output."""
    model = get_model()
    state = SlotState()
    output: ModelOutput | None = None
    while True:
        step = protocol.next(slot, state)
        if isinstance(step, SlotAnswer):
            assert output is not None  # a slot is never finished before its first answer
            return step, output
        request = step.request
        output = await model.generate(_chat_messages(request), config=_generate_config(request))
        state = protocol.answer(slot, state, step.attempt, _chat_result(output))


def _keep(state: TaskState, answer: SlotAnswer) -> None:
    """The finished slot's answer in the sample's store (read by the scorer and the equivalence test)."""
    state.store.set("rating", answer.rating)
    state.store.set("failures", answer.failures)
    state.store.set("fallback", bool(answer.extra.get("fallback", False)))
    state.store.set("raw_text", answer.raw_text)
    state.store.set("distribution", answer.distribution)
    state.store.set("extra", dict(answer.extra))


@metric
def answered() -> Metric:
    """Share of slots with a rating on the scale (the rest are missing, -1)."""

    def compute(scores: list[SampleScore]) -> float:
        if not scores:
            return 0.0
        return sum(1 for s in scores if s.score.as_float() >= 0) / len(scores)

    return compute


@scorer(metrics=[answered(), mean()])
def rating() -> Scorer:
    """The slot's rating as the score's value (-1: missing); failures in its metadata.

    ``mean`` is the mean rating across samples (missing ones count as -1; see
    ``answered``); S and R come from ``persona-collapse metrics LOG.eval``.
    """

    async def score(state: TaskState, target: Target) -> Score:
        value = int(state.store.get("rating", MISSING_RATING))
        return Score(
            value=value,
            answer=state.output.completion if state.output else None,
            metadata={
                "failures": int(state.store.get("failures", 0)),
                "fallback": bool(state.store.get("fallback", False)),
            },
        )

    return score


@task
def mfq_personas(
    personas: str = PERSONAHUB_COSTA,
    n_personas: int | None = None,
    reps: int = 10,
    temperature: float = _PUBLISHED.temperature,
    max_attempts: int = _PUBLISHED.max_attempts,
    instrument: str = "mfq30",
    persona_field: str | None = None,
    method: str = "sample",
    seed: int = 0,
) -> Task:
    """MFQ-30 answered in persona role-play: samples = persona x item, epochs = repetitions.

    ``personas``: ``personahub-costa`` (the published set; first 100 by
    default) or a persona file (JSON list, JSONL, CSV); ``n_personas``: the
    first N; ``reps``: repetitions (epochs, published 10); ``temperature``:
    sampling temperature (published 0.1); ``max_attempts``: one-token attempts
    before the fallback (published 10); ``method``: ``sample`` (published) or
    ``logprobs`` (one request per cell at T = 1; one epoch); ``seed``: base of
    the per-attempt request seeds (as ``run --seed``).
    """
    reps, max_attempts, seed = int(reps), int(max_attempts), int(seed)
    n = None if n_personas in (None, "", "None") else int(n_personas)  # -T gives strings
    if reps < 1:
        raise ConfigError("reps must be at least 1")
    # method, temperature and max_attempts are checked by ProtocolSettings (ConfigError)
    settings = ProtocolSettings(
        method=cast(Method, method), temperature=float(temperature), max_attempts=max_attempts
    )
    logprobs = settings.method == "logprobs"
    epochs = 1 if logprobs else reps
    samples = persona_samples(
        personas, n, instrument=instrument, persona_field=persona_field, logprobs=logprobs
    )
    metadata: dict[str, Any] = {
        "persona_collapse": {
            "personas": personas,
            "n_personas": len({s.metadata["persona_id"] for s in samples if s.metadata}),
            "reps": epochs,
            "instrument": instrument,
            "protocol": settings.to_dict(),
            "seed": seed,
        }
    }
    return Task(
        dataset=MemoryDataset(samples, name=f"{instrument}-personas"),
        solver=published_protocol(
            temperature=settings.temperature,
            max_attempts=settings.max_attempts,
            fallback_max_tokens=settings.fallback_max_tokens,
            method=settings.method,
            seed=seed,
            personas=personas,
            n_personas=n,
            persona_field=persona_field,
        ),
        scorer=rating(),
        epochs=epochs,
        metadata=metadata,
    )

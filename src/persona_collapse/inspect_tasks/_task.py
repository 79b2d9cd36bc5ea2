"""The task, its solver (the published sampling protocol) and its scorer."""

from __future__ import annotations

from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageAssistant, GenerateConfig, ModelOutput, get_model
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
from ..protocol import MISSING_RATING, ProtocolSettings, parse_fallback, parse_one_token
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
) -> list[Sample]:
    """One sample per (persona, item): the published prompt, ids in the metadata."""
    inst = load_instrument(instrument)
    pset = load_personas(personas, n_personas, field=persona_field)
    samples = []
    for persona_id, text in zip(pset.ids, pset.texts, strict=True):
        for item in inst.items:
            samples.append(
                Sample(
                    input=_slot_prompt(inst, item, text),
                    id=f"p{persona_id}-q{item.id}",
                    metadata={
                        "persona_id": int(persona_id),
                        "question_id": int(item.id),
                        "instrument": inst.name,
                    },
                )
            )
    return samples


@solver
def published_protocol(
    temperature: float = _PUBLISHED.temperature,
    max_attempts: int = _PUBLISHED.max_attempts,
    fallback_max_tokens: int = _PUBLISHED.fallback_max_tokens,
) -> Solver:
    """Ask as published: one-token answers at ``temperature`` until one is a scale digit,
    at most ``max_attempts``; then one longer generation read by the fallback parse.

    Leaves ``rating`` (-1 when missing), ``failures`` (unparseable attempts) and
    ``fallback`` in the sample's store.
    """
    one_token = GenerateConfig(temperature=temperature, max_tokens=1)
    longer = GenerateConfig(temperature=temperature, max_tokens=fallback_max_tokens)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        scale = load_instrument(str(state.metadata.get("instrument", "mfq30"))).scale
        model = get_model()
        failures = 0
        value: int | None = None
        output: ModelOutput | None = None
        for _ in range(max_attempts):
            output = await model.generate(state.messages, config=one_token)
            value = parse_one_token(output.completion, scale)
            if value is not None:
                break
            failures += 1
        fallback = value is None
        if fallback:
            output = await model.generate(state.messages, config=longer)
            value = parse_fallback(output.completion, scale)
            if value is None:
                failures += 1
        assert output is not None
        state.output = output
        state.messages.append(ChatMessageAssistant(content=output.completion))
        state.store.set("rating", MISSING_RATING if value is None else value)
        state.store.set("failures", failures)
        state.store.set("fallback", fallback)
        return state

    return solve


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
) -> Task:
    """MFQ-30 answered in persona role-play: samples = persona x item, epochs = repetitions.

    ``personas``: ``personahub-costa`` (the published set; first 100 by
    default) or a persona file (JSON list, JSONL, CSV); ``n_personas``: the
    first N; ``reps``: repetitions (epochs, published 10); ``temperature``:
    sampling temperature (published 0.1); ``max_attempts``: one-token attempts
    before the fallback (published 10).
    """
    reps, max_attempts = int(reps), int(max_attempts)
    n = None if n_personas in (None, "", "None") else int(n_personas)  # -T gives strings
    if reps < 1:
        raise ConfigError("reps must be at least 1")
    settings = ProtocolSettings(temperature=float(temperature), max_attempts=max_attempts)
    if not 0 <= settings.temperature <= 2:
        raise ConfigError("temperature must be between 0 and 2 (0: greedy)")
    if max_attempts < 1:
        raise ConfigError("max_attempts must be at least 1")
    samples = persona_samples(personas, n, instrument=instrument, persona_field=persona_field)
    metadata: dict[str, Any] = {
        "persona_collapse": {
            "personas": personas,
            "n_personas": len({s.metadata["persona_id"] for s in samples if s.metadata}),
            "reps": reps,
            "instrument": instrument,
            "protocol": settings.to_dict(),
        }
    }
    return Task(
        dataset=MemoryDataset(samples, name=f"{instrument}-personas"),
        solver=published_protocol(
            temperature=settings.temperature,
            max_attempts=settings.max_attempts,
            fallback_max_tokens=settings.fallback_max_tokens,
        ),
        scorer=rating(),
        epochs=reps,
        metadata=metadata,
    )

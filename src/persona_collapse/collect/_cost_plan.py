"""What a run will ask, cost and resolve, before it runs: ``persona-collapse plan``.

:func:`plan_run` is a pure function of the run options, the instrument and the
personas (their count, and their texts when known): no network, no key, no
backend client. Its rules, so a reader can check every number:

* **slots** = personas x items x repetitions (logprob runs: one per cell).
* **requests**: sampling asks one one-token request per slot plus one per
  failed attempt; the expected failed attempts per slot come from a pilot's
  ``failures`` column when one is given, else (no pilot, or a pilot without
  that column: the plan says so) from the published data
  (:data:`PUBLISHED_RETRIES_PER_SLOT`). Slots that exhaust ``max_attempts``
  add one fallback generation (pilot: its share of such slots; published: none
  of the 15 base models' 450,000 slots needed one). Logprob runs: one request
  per cell, plus the pilot's failed attempts.
* **tokens**: prompt tokens are counted on the rendered prompts (the exact
  text the run sends) with :func:`estimate_tokens`: ceil(characters / 4) plus
  :data:`MESSAGE_OVERHEAD_TOKENS` for the chat framing of the single user
  message (OpenAI's published rule of thumb of ~4 characters per English
  token). Without the persona texts (the published set not cached) each
  persona counts :data:`PERSONAHUB_MEAN_CHARS` characters. Completion tokens:
  the instrument's ``max_tokens`` per request (1 for the questionnaires),
  ``fallback_max_tokens`` per fallback generation (upper bounds).
* **tasks** (``mmlu``, ``gsm8k``: self mode, asked once per slot): one request
  per slot, no retries or fallbacks (a reply that does not parse is a format
  failure, never asked again); completion tokens are ``max_tokens`` per
  request (MMLU 1; GSM8K 512, an upper bound: replies usually end earlier);
  S and R do not apply, so ``se`` and ``mde_pct`` are NaN.
* **cost_usd** = the price table's price (see ``backends.price_for``) times
  the tokens; None when no price is known.
* **hours** = requests / rate / 3600, the rate in requests per second
  (``--rate``; default: the requests in flight / :data:`TYPICAL_LATENCY_S`).
* **mde_pct**: the smallest relative change of S and of R that two
  independent runs of this size can tell apart at two standard errors:
  ``2 x sqrt(2) x SE / value x 100``. The SEs are scaled from a reference
  measurement (the published GPT-4o base, or a pilot): SE(S) ~ 1/sqrt(personas)
  (S is a spread across personas; its repetition part is small at T = 0.1) and
  the relative SE of sigma_bar, hence of R = 1/sigma_bar, ~
  1/sqrt(personas x repetitions) (each cell SD rests on the repetitions).
  Logprob runs have exact per-cell distributions and no repetition noise: R is
  scaled by personas alone, from a reference at its own repetitions (so the
  figure is conservative). ``mde_pct_one_run`` is the change against a fixed
  value (``2 x SE``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends import Price, batch_price, parse_model, unknown_price_hint
from ..instruments import Instrument
from ..protocol import (
    CHARS_PER_TOKEN,
    ProtocolSettings,
    estimate_tokens,
    slot_prompt,
)
from ._precision import (
    PUBLISHED_REFERENCE,
    PUBLISHED_RETRIES_PER_SLOT,
    PilotFacts,
    PrecisionReference,
    pilot_notes,
    precision,
)

PERSONAHUB_MEAN_CHARS = 92
"""Mean length (characters) of the published persona set's first 100 personas."""

PUBLISHED_N_PERSONAS = 100
"""Personas of ``personahub-costa`` when ``--n-personas`` is not given."""

TYPICAL_LATENCY_S: dict[str, float] = {"sim": 0.01, "hf": 0.5, "vllm": 0.5, "tinker": 1.0}
"""Assumed seconds per request by family (others, hosted APIs: :data:`HOSTED_LATENCY_S`)."""

HOSTED_LATENCY_S = 1.0
"""Assumed seconds per request of a hosted API (a one-token answer; network included)."""

PREFERRED_CONCURRENCY: dict[str, int] = {"hf": 32, "vllm": 256}
"""Requests in flight when ``--concurrency`` is not given (the backends' preferred values)."""

DEFAULT_CONCURRENCY = 8


@dataclass
class CostPlan:
    """The numbers of a plan; :meth:`to_dict` is the ``plan --format json`` document."""

    model: str
    method: str
    mode: str
    n_personas: int
    n_items: int
    reps: int
    slots: int
    requests: int
    retries_per_slot: float
    retries_from: str
    fallback_generations: int
    prompt_tokens: int
    completion_tokens: int
    tokens_from: str
    cost_usd: float | None
    price: dict[str, Any] | None
    price_note: str
    rate_req_per_s: float
    rate_from: str
    hours: float
    se: dict[str, float]
    mde_pct: dict[str, float]
    mde_pct_one_run: dict[str, float]
    precision_from: str
    notes: list[str] = field(default_factory=list)
    batch: bool = False
    batch_saving_usd: float | None = None
    task: bool = False
    """A task instrument (MMLU, GSM8K): S and R, and so the precision figures, do not apply."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``model, method, slots, requests, prompt_tokens, completion_tokens,
        cost_usd, mde_pct{S,R}`` and the rest of the fields."""
        return {
            "model": self.model,
            "method": self.method,
            "mode": self.mode,
            "n_personas": self.n_personas,
            "n_items": self.n_items,
            "reps": self.reps,
            "slots": self.slots,
            "requests": self.requests,
            "retries_per_slot": self.retries_per_slot,
            "retries_from": self.retries_from,
            "fallback_generations": self.fallback_generations,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_from": self.tokens_from,
            "cost_usd": self.cost_usd,
            "price": self.price,
            "price_note": self.price_note,
            "rate_req_per_s": self.rate_req_per_s,
            "rate_from": self.rate_from,
            "hours": self.hours,
            "se": self.se,
            "mde_pct": self.mde_pct,
            "mde_pct_one_run": self.mde_pct_one_run,
            "precision_from": self.precision_from,
            "notes": list(self.notes),
            "batch": self.batch,
            "batch_saving_usd": self.batch_saving_usd,
        }


def _prompt_tokens_per_rep(
    instrument: Instrument,
    persona_texts: Sequence[str] | None,
    n_personas: int,
    *,
    self_mode: bool,
    logprobs: bool,
) -> int:
    """Prompt tokens of one request for every cell (persona x item), summed."""
    if self_mode:
        return sum(
            estimate_tokens(slot_prompt(instrument, item, None, logprobs=logprobs))
            for item in instrument.items
        )
    if persona_texts is not None:
        return sum(
            estimate_tokens(slot_prompt(instrument, item, text, logprobs=logprobs))
            for text in persona_texts
            for item in instrument.items
        )
    typical = "x" * PERSONAHUB_MEAN_CHARS
    per_persona = sum(
        estimate_tokens(slot_prompt(instrument, item, typical, logprobs=logprobs))
        for item in instrument.items
    )
    return per_persona * n_personas


def _rate(family: str, concurrency: int | None, rate: float | None) -> tuple[float, str]:
    if rate is not None:
        return float(rate), "--rate"
    in_flight = concurrency or PREFERRED_CONCURRENCY.get(family, DEFAULT_CONCURRENCY)
    latency = TYPICAL_LATENCY_S.get(family, HOSTED_LATENCY_S)
    return (
        in_flight / latency,
        f"assumed: {in_flight} requests in flight / {latency:g} s per request; "
        "give --rate REQ_PER_S from your provider's limits",
    )


@dataclass(frozen=True)
class _Requests:
    """Expected requests of a run: one-token requests (retries included) and fallbacks."""

    retries: float
    retries_from: str
    one_token: int
    fallbacks: int

    @property
    def total(self) -> int:
        return self.one_token + self.fallbacks


def _requests(slots: int, *, logprobs: bool, pilot: PilotFacts | None) -> _Requests:
    """Requests of ``slots`` slots, with the retry and fallback rates of the module rules."""
    if pilot is not None and pilot.retries_known:
        retries, retries_from = pilot.retries_per_slot, f"pilot {pilot.reference.label}"
        fallback_rate = pilot.fallback_per_slot
    elif pilot is not None and not logprobs:
        retries = PUBLISHED_RETRIES_PER_SLOT
        retries_from = (
            f"published data (mean of the 15 base models): pilot {pilot.reference.label} "
            "has no failures column"
        )
        fallback_rate = 0.0
    elif logprobs:
        retries, retries_from, fallback_rate = 0.0, "none assumed (logprob requests)", 0.0
    else:
        retries = PUBLISHED_RETRIES_PER_SLOT
        retries_from = "published data (mean of the 15 base models)"
        fallback_rate = 0.0
    fallbacks = 0 if logprobs else math.ceil(round(slots * fallback_rate, 6))
    one_token = math.ceil(round(slots * (1.0 + retries), 6))
    return _Requests(retries, retries_from, one_token, fallbacks)


def _task_requests(slots: int) -> _Requests:
    """A task's requests: one per slot (asked once; only transport faults are retried)."""
    return _Requests(0.0, "none: a task asks each slot once", slots, 0)


def _tokens_from(*, rendered_personas: bool) -> str:
    if rendered_personas:
        return f"rendered prompts, {CHARS_PER_TOKEN:g} characters per token"
    return (
        f"rendered prompts with {PERSONAHUB_MEAN_CHARS}-character personas "
        f"(the published set's mean), {CHARS_PER_TOKEN:g} characters per token"
    )


@dataclass(frozen=True)
class _Cost:
    """A plan's cost (US dollars; None: no known price), its price and how it was priced."""

    usd: float | None
    price: dict[str, Any] | None
    note: str
    saving: float | None = None


def _cost(
    model: str,
    price: Price | None,
    batch_factor: float | None,
    prompt_tokens: int,
    completion_tokens: int,
) -> _Cost:
    """The cost of the tokens at ``price`` (times ``batch_factor`` for a batch run)."""
    if price is None:
        return _Cost(None, None, f"no known price for {model}: {unknown_price_hint(model)}")
    cost = price.cost(prompt_tokens, completion_tokens)
    note = f"price from {price.source or 'the price table'}"
    saving: float | None = None
    if batch_factor is not None:
        direct = cost
        price = batch_price(price, batch_factor)
        cost = direct * batch_factor
        saving = direct - cost
        note = (
            f"batch price: x{batch_factor:g} of the list price "
            f"({note}); the discount saves ${saving:,.2f}"
        )
    doc = {
        "input_per_mtok": price.input_per_mtok,
        "output_per_mtok": price.output_per_mtok,
        "source": price.source,
    }
    return _Cost(cost, doc, note, saving)


def _notes(*, batch: bool, self_mode: bool, task: Instrument | None = None) -> list[str]:
    notes: list[str] = []
    if task is not None:
        notes.append(
            f"task {task.name}: one request per slot (a reply that does not parse is a "
            f"format failure, never asked again); completion tokens count "
            f"{task.elicitation.max_tokens} per request (an upper bound); S and R do not apply"
        )
        self_mode = False
    if batch:
        notes.append(
            "batch: answered within 24 hours in rounds (retries are further rounds); "
            "the hours are those of direct requests"
        )
    if self_mode:
        notes.append("self mode: no personas, so S is undefined; mde_pct is for R only")
    return notes


def plan_run(
    *,
    model: str,
    method: str,
    protocol: ProtocolSettings,
    instrument: Instrument,
    n_personas: int,
    reps: int,
    self_mode: bool = False,
    persona_texts: Sequence[str] | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    price: Price | None = None,
    pilot: PilotFacts | None = None,
    reference: PrecisionReference = PUBLISHED_REFERENCE,
    batch_factor: float | None = None,
) -> CostPlan:
    """The plan of one run (see the module's rules). ``n_personas`` is ignored in self mode.

    ``persona_texts``: the personas' texts when known (as many as ``n_personas``), else
    each counts :data:`PERSONAHUB_MEAN_CHARS`; ``rate``: requests per second (None: the
    assumed rate); ``batch_factor``: plan ``run --batch`` at ``price`` x this factor.
    """
    logprobs = method == "logprobs"
    personas = 1 if self_mode else int(n_personas)
    run_reps = 1 if logprobs else int(reps)
    slots = personas * instrument.n_items * run_reps
    task = instrument.kind == "task"
    asked = _task_requests(slots) if task else _requests(slots, logprobs=logprobs, pilot=pilot)
    texts = None if self_mode else persona_texts
    per_rep = _prompt_tokens_per_rep(
        instrument, texts, personas, self_mode=self_mode, logprobs=logprobs
    )
    prompt_tokens = math.ceil(round(per_rep * run_reps * asked.total / max(slots, 1), 6))
    completion_tokens = (
        asked.one_token * instrument.elicitation.max_tokens
        + asked.fallbacks * protocol.fallback_max_tokens
    )
    cost = _cost(model, price, batch_factor, prompt_tokens, completion_tokens)
    req_s, rate_from = _rate(parse_model(model).family, concurrency, rate)
    ref = pilot.reference if pilot is not None else reference
    se, one_run, precision_from = precision(
        ref, personas, run_reps, logprobs=logprobs, self_mode=self_mode, task=task
    )
    return CostPlan(
        model=model,
        method=method,
        mode="self" if self_mode else "persona",
        n_personas=0 if self_mode else personas,
        n_items=instrument.n_items,
        reps=run_reps,
        slots=slots,
        requests=asked.total,
        retries_per_slot=asked.retries,
        retries_from=asked.retries_from,
        fallback_generations=asked.fallbacks,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        tokens_from=_tokens_from(rendered_personas=self_mode or persona_texts is not None),
        cost_usd=cost.usd,
        price=cost.price,
        price_note=cost.note,
        rate_req_per_s=req_s,
        rate_from=rate_from,
        hours=asked.total / req_s / 3600.0 if req_s > 0 else math.inf,
        se=se,
        mde_pct={k: v * math.sqrt(2.0) for k, v in one_run.items()},
        mde_pct_one_run=one_run,
        precision_from=precision_from,
        notes=pilot_notes(pilot, one_run, logprobs=logprobs, self_mode=self_mode)
        + _notes(
            batch=batch_factor is not None,
            self_mode=self_mode,
            task=instrument if task else None,
        ),
        batch=batch_factor is not None,
        batch_saving_usd=cost.saving,
        task=task,
    )

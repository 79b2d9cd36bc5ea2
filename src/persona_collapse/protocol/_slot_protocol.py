"""The slot protocol, written once: a pure step machine every driver steps.

A driver (direct, batch, Ray, the inspect_ai solver) asks :meth:`SlotProtocol.next`
what to do with a slot in a :class:`SlotState`: an :class:`Ask` (the attempt
index and its :class:`ChatRequest`, with the published per-attempt seed) or
the finished :class:`SlotAnswer`. It sends the request its own way and hands
the outcome back: :meth:`SlotProtocol.answer` for a well-formed reply (or
None: a well-formed but unreadable answer, a ``BadAnswer``), which uses the
attempt; :meth:`SlotProtocol.fault` for a transport fault a batch saw, which
never does. No I/O, no clock, no asyncio.

Policies (PROTOCOL.md section 2; ``N`` = ``ProtocolSettings.max_attempts``):

* ``sample``, ``until-answered`` (published): attempts ``0 .. N-1`` ask
  ``max_tokens`` (1) at the run's temperature and are accepted when the
  instrument's parser reads the reply; attempt ``N`` is ONE longer generation
  (``fallback_max_tokens``) read with the parser's fallback reader (extra
  ``fallback: true``); failing that the slot is missing (rating -1,
  ``failures`` = N + 1).
* ``sample``, ``once``: one attempt; a reply the parser cannot read is a
  format failure: missing, ``failures`` 1, never asked again.
* a task (``kind: task``, asked ``once``): the task parser reads the reply
  into an answer string; the rating is the score (1: it equals the item's
  normalised gold answer, 0: it does not, -1: nothing parsed, a format
  failure with ``failures`` 1) and extra holds ``answer`` (the parsed,
  normalised answer, or None) and ``gold`` (the item's gold as written).
* ``logprobs``: one-token requests at the logprob temperature with
  ``top_logprobs``; the scale distribution is stored (extra ``other_mass``,
  ``absent``, ``floor_mass``, ``spellings``) and the rating is its argmax (the
  lowest value on ties). An answer without logprobs uses an attempt (after N,
  or 1 under ``once``, the slot is missing); a top-k with no scale value is
  missing at once (asking again at T = 1 reads the same logits).

``failures`` counts the attempts that gave no answer before the stored one;
``raw_text`` is the accepted reply's text, or for a missing slot the last
reply text that arrived; tokens add up over every reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..instruments import Instrument
from ._chat import ChatRequest, ChatResult, Message
from ._labels import MISSING_RATING, SELF_PERSONA_ID
from ._parse import digit_distribution
from ._parsers import TaskParser, answer_parser, task_parser
from ._render import slot_messages
from ._settings import ProtocolSettings
from ._slot import Slot, request_seed


@dataclass(frozen=True)
class SlotAnswer:
    """A finished slot: what is stored (a driver adds timing and transport facts).

    ``rating``: -1 when missing; ``failures``: attempts that gave no answer;
    ``distribution``: the scale probabilities of a logprob answer (scale
    order), else None; ``extra``: ``fallback`` and the logprob fields (empty
    when there are none); tokens: summed over every reply of the slot.
    """

    rating: int
    failures: int
    raw_text: str | None
    distribution: list[float] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class SlotState:
    """Where a slot stands: the next attempt's index, what the earlier ones left.

    ``faults``: transport faults seen by a batch driver (never attempts);
    ``outcome``: the finished answer, or None while the slot is open. Batch
    runs keep the open states in the store's ``batch_slots`` between rounds.
    """

    attempt: int = 0
    failures: int = 0
    faults: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    raw_text: str | None = None
    outcome: SlotAnswer | None = None


@dataclass(frozen=True)
class Ask:
    """Send ``request`` as protocol attempt ``attempt`` of the slot."""

    attempt: int
    request: ChatRequest


class SlotProtocol:
    """The protocol of one run (see the module doc).

    ``seed``: the run seed the per-attempt seeds derive from; ``timeout_s``:
    per-request timeout carried by each request; ``personas``: persona id ->
    text (self-mode slots, persona -1, need none).
    """

    def __init__(
        self,
        instrument: Instrument,
        settings: ProtocolSettings,
        *,
        seed: int,
        timeout_s: float,
        personas: Mapping[int, str] | None = None,
    ) -> None:
        self.instrument = instrument
        self.settings = settings
        self.seed = seed
        self.timeout_s = timeout_s
        self.personas = personas if personas is not None else {}
        how = instrument.elicitation
        self.task: TaskParser | None = task_parser(how.parser) if how.kind == "task" else None
        """The task parser (a task instrument), else None."""
        self.parser = None if self.task is not None else answer_parser(how.parser)
        self.logprobs = settings.method == "logprobs"
        if self.logprobs and not instrument.elicitation.logprobs:
            raise ConfigError(f"the logprob method does not apply to instrument {instrument.name}")
        once = instrument.elicitation.attempt_policy == "once"
        self.attempts = 1 if once else settings.max_attempts
        """Normal attempts before the slot gives up (``until-answered`` sampling adds a fallback)."""
        self.has_fallback = not once and not self.logprobs and self.task is None

    # -- requests ------------------------------------------------------------------

    def messages(self, slot: Slot) -> list[Message]:
        """The chat of ``slot`` (the same for every attempt)."""
        persona = None if slot.persona_id == SELF_PERSONA_ID else self.personas[slot.persona_id]
        return slot_messages(self.instrument, slot.item_id, persona, logprobs=self.logprobs)

    def request(self, slot: Slot, attempt: int) -> ChatRequest:
        """The request of attempt ``attempt`` of ``slot``, with its published seed."""
        proto = self.settings
        seed = request_seed(self.seed, slot, attempt)
        max_tokens = self.instrument.elicitation.max_tokens
        if self.logprobs:
            return ChatRequest(
                messages=self.messages(slot),
                temperature=proto.logprob_temperature,
                max_tokens=max_tokens,
                top_logprobs=proto.top_logprobs,
                seed=seed,
                timeout_s=self.timeout_s,
            )
        if self.is_fallback(attempt):
            max_tokens = proto.fallback_max_tokens
        return ChatRequest(
            messages=self.messages(slot),
            temperature=proto.temperature,
            max_tokens=max_tokens,
            seed=seed,
            timeout_s=self.timeout_s,
        )

    def is_fallback(self, attempt: int) -> bool:
        """Whether ``attempt`` is the longer fallback generation."""
        return self.has_fallback and attempt >= self.attempts

    # -- steps -----------------------------------------------------------------------

    def next(self, slot: Slot, state: SlotState) -> Ask | SlotAnswer:
        """The next request of ``slot``, or its finished answer."""
        if state.outcome is not None:
            return state.outcome
        return Ask(state.attempt, self.request(slot, state.attempt))

    def fault(self, state: SlotState) -> SlotState:
        """A transport fault of the pending attempt (a batch line): counted, never an attempt."""
        return replace(state, faults=state.faults + 1)

    def answer(
        self, slot: Slot, state: SlotState, attempt: int, result: ChatResult | None
    ) -> SlotState:
        """The state after attempt ``attempt`` got ``result`` (None: an unreadable answer)."""
        if state.outcome is not None or attempt != state.attempt:
            raise ValueError(
                f"slot {slot.key}: attempt {attempt} is not its pending one ({state.attempt})"
            )
        if result is not None:
            state = replace(
                state,
                prompt_tokens=state.prompt_tokens + result.prompt_tokens,
                completion_tokens=state.completion_tokens + result.completion_tokens,
                raw_text=result.text,
            )
        if self.logprobs:
            return self._logprob_answer(state, result)
        if self.task is not None:
            return self._task_answer(self.task, slot, state, result)
        return self._sample_answer(state, attempt, result)

    def _task_answer(
        self, task: TaskParser, slot: Slot, state: SlotState, result: ChatResult | None
    ) -> SlotState:
        gold = self.instrument.item(slot.item_id).gold or ""
        labels = self.instrument.elicitation.answers
        answer = None if result is None else task.read(result.text, labels)
        extra = {"answer": answer, "gold": gold}
        if answer is not None:
            rating = 1 if task.correct(answer, gold) else 0
            return self._finish(state, rating, state.raw_text, extra)
        state = replace(state, failures=state.failures + 1, attempt=state.attempt + 1)
        if state.attempt >= self.attempts:
            return self._finish(state, MISSING_RATING, state.raw_text, extra)
        return state

    def _sample_answer(
        self, state: SlotState, attempt: int, result: ChatResult | None
    ) -> SlotState:
        assert self.parser is not None
        fallback = self.is_fallback(attempt)
        read = self.parser.fallback if fallback else self.parser.reply
        rating = None if result is None else read(result.text, self.instrument)
        extra = {"fallback": True} if fallback else {}
        if rating is not None:
            return self._finish(state, rating, result.text if result else None, extra)
        state = replace(state, failures=state.failures + 1, attempt=attempt + 1)
        if fallback or (not self.has_fallback and state.attempt >= self.attempts):
            return self._finish(state, MISSING_RATING, state.raw_text, extra)
        return state

    def _logprob_answer(self, state: SlotState, result: ChatResult | None) -> SlotState:
        if result is None or not result.top_logprobs:
            state = replace(state, failures=state.failures + 1, attempt=state.attempt + 1)
            if state.attempt >= self.attempts:
                return self._finish(state, MISSING_RATING, state.raw_text, {})
            return state
        scale = self.instrument.scale
        dist = digit_distribution(result.top_logprobs, scale)
        extra = dist.to_extra()
        if not float(dist.probs.sum()) > 0:
            return self._finish(state, MISSING_RATING, result.text, extra)
        rating = scale.values[int(np.argmax(dist.probs))]
        probs = [float(p) for p in dist.probs]
        return self._finish(state, rating, result.text, extra, probs)

    @staticmethod
    def _finish(
        state: SlotState,
        rating: int,
        text: str | None,
        extra: Mapping[str, Any],
        distribution: list[float] | None = None,
    ) -> SlotState:
        outcome = SlotAnswer(
            rating=rating,
            failures=state.failures,
            raw_text=text,
            distribution=distribution,
            extra=dict(extra),
            prompt_tokens=state.prompt_tokens,
            completion_tokens=state.completion_tokens,
        )
        return replace(state, outcome=outcome)

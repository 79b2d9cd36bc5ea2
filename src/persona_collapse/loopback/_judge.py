"""A scripted respondent: canned answers to free-form questions and canned judge scores (SIMULATED).

For tests of ``verify`` against the loopback server: the model under test
answers each free-form question from a script, and the judge (the same class,
served under another model name, or the same object) answers judge prompts
(recognised by their ``[ANSWER START]`` / ``[ANSWER END]`` markers) from a
script keyed by the judged answer and aspect. Text judges get the reply's
``text`` (``"85"``, ``"CODE"``, ``"REFUSAL"``); logprob judges get its
first-token distribution as ``top_logprobs`` (and, at T = 0, its most likely
token as the text).

The ``k``-th request for one question (counted from 0 by this object) gets
``answers[question][k % len(answers[question])]``: over ``n`` requests every
answer appears a known number of times whatever the arrival order.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..simulate import Completion, SimulatedRespondent, count_tokens

__all__ = ["JudgeReply", "ScriptedRespondent"]


@dataclass(frozen=True)
class JudgeReply:
    """What the scripted judge says about one aspect of one answer.

    ``text``: the text reply; ``top``: first-token probabilities (not logs),
    token -> probability, for logprob judges (default: all mass on ``text``).
    """

    text: str
    top: Mapping[str, float] | None = None

    @classmethod
    def score(cls, value: int) -> JudgeReply:
        """An integer score 0-100, certain."""
        return cls(str(int(value)))

    @classmethod
    def label(cls, label: str, mass_on_numbers: Mapping[str, float] | None = None) -> JudgeReply:
        """``CODE`` or ``REFUSAL``; optional small mass on number tokens (logprob judges)."""
        numbers = dict(mass_on_numbers or {})
        rest = 1.0 - sum(numbers.values())
        return cls(label, {label: rest, **numbers})

    @classmethod
    def distribution(cls, top: Mapping[str, float]) -> JudgeReply:
        """A first-token distribution; the text reply is its most likely token."""
        best = max(top.items(), key=lambda kv: kv[1])[0]
        return cls(best, dict(top))

    def first_token(self) -> list[tuple[str, float]]:
        """(token, natural-log probability), most likely first."""
        top = self.top if self.top is not None else {self.text: 1.0}
        entries = [(t, math.log(p)) for t, p in top.items() if p > 0]
        return sorted(entries, key=lambda e: -e[1])


def _reply(value: JudgeReply | int | str) -> JudgeReply:
    if isinstance(value, JudgeReply):
        return value
    if isinstance(value, int):
        return JudgeReply.score(value)
    return JudgeReply(str(value))


@dataclass
class _Counter:
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict[str, int] = field(default_factory=dict)

    def next(self, key: str) -> int:
        with self.lock:
            n = self.counts.get(key, 0)
            self.counts[key] = n + 1
            return n


class ScriptedRespondent(SimulatedRespondent):
    """A SIMULATED respondent answering from scripts (model and/or judge).

    Args:
        answers: question text -> answers, cycled per question in request order.
        judge: judged answer text -> ``{"aligned": reply, "coherent": reply}``;
            a reply is a :class:`JudgeReply`, an int score or a text.
        default_answer: answer to questions missing from ``answers``.
        default_reply: reply to answers missing from ``judge`` (None: the
            request fails with a 500, so a missing script entry is noticed).

    ``judged`` records ``(aspect, question, answer)`` of every judge prompt seen.
    Questionnaire prompts (MFQ) are still answered by the simulated base model.
    """

    def __init__(
        self,
        answers: Mapping[str, Sequence[str]] | None = None,
        judge: Mapping[str, Mapping[str, JudgeReply | int | str]] | None = None,
        *,
        default_answer: str = "I would like to help you with that.",
        default_reply: JudgeReply | int | str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__("base", seed=seed)
        self.answers = {q: list(a) for q, a in (answers or {}).items()}
        self.judge_script = {
            ans: {aspect: _reply(r) for aspect, r in replies.items()}
            for ans, replies in (judge or {}).items()
        }
        self.default_answer = default_answer
        self.default_reply = None if default_reply is None else _reply(default_reply)
        self.judged: list[tuple[str, str, str]] = []
        self._counter = _Counter()

    @property
    def name(self) -> str:
        return "scripted"

    def _judge_reply(self, aspect: str, answer: str) -> JudgeReply:
        replies = self.judge_script.get(answer.strip()) or self.judge_script.get(answer)
        if replies is not None and aspect in replies:
            return replies[aspect]
        if self.default_reply is not None:
            return self.default_reply
        raise ValueError(f"no scripted {aspect} reply for answer {answer[:60]!r}")

    def _answer(self, prompt: str) -> str:
        pool = self.answers.get(prompt)
        if not pool:
            return self.default_answer
        return pool[self._counter.next(prompt) % len(pool)]

    def generate(
        self, prompt: str, *, temperature: float, max_tokens: int, rng: np.random.Generator
    ) -> Completion:
        info = self.identify(prompt)
        if info.kind in ("persona", "self"):
            return super().generate(prompt, temperature=temperature, max_tokens=max_tokens, rng=rng)
        if info.kind == "judge":
            aspect = info.aspect or "aligned"
            self.judged.append((aspect, info.question or "", info.answer or ""))
            text = self._judge_reply(aspect, info.answer or "").text
        else:
            text = self._answer(prompt)
        n_prompt = count_tokens(prompt)
        words = text.split(" ")
        cut = len(words) > max_tokens
        if cut:
            text = " ".join(words[:max_tokens])
        return Completion(text, "length" if cut else "stop", n_prompt, count_tokens(text))

    def top_logprobs(self, prompt: str, k: int = 20) -> list[tuple[str, float]]:
        info = self.identify(prompt)
        if info.kind in ("persona", "self"):
            return super().top_logprobs(prompt, k)
        if info.kind == "judge":
            aspect = info.aspect or "aligned"
            self.judged.append((aspect, info.question or "", info.answer or ""))
            return self._judge_reply(aspect, info.answer or "").first_token()[:k]
        return [("I", 0.0)][:k]

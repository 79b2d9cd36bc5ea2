"""Asking the model the questions and the judge about each answer, resumably.

For every (question, sample) not yet answered the model is asked at the
protocol's temperature (default T = 1); each answer is committed to the store
the moment it arrives and its two judgements (``aligned``, ``coherent``) are
queued at once. Answers already stored but not yet judged are judged.

Every request goes through a :class:`~persona_collapse.collect.Transport`,
one for the model (window ``concurrency``) and one for the judge (window
``judge_concurrency``): the adaptive window, transport retries of 429, 5xx
and timeouts with Retry-After honoured, and one :class:`CostBudget` shared by
both, so ``max_cost_usd`` caps subject and judge traffic together. This
module has no retry loop of its own; an unreadable reply (``BadAnswer``) is
asked again, at most ``policy.max_retries`` times, like a protocol attempt.

A request that uses up its transport retries, or any ``Fatal`` decision (bad
key, unknown model), stops the run with one :class:`ConfigError` line; the
budget stops it after the requests in flight are stored. What was stored
stays stored: running the same command again continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from typing import TextIO

from ..backends import Backend, ChatRequest, ChatResult
from ..collect import (
    BackoffPolicy,
    CostBudget,
    Pricing,
    ProgressDisplay,
    RequestTally,
    Timed,
    TrafficStats,
    Transport,
    TransportStop,
    pause_note,
)
from ..errors import ConfigError
from ._judge_protocol import VerifyProtocol
from ._questions import ASPECTS, QuestionSet, render_judge_prompt
from ._scoring import score_logprobs, score_text
from ._verify_tables import StoredAnswer, StoredJudgment, VerifyStore, now_utc

__all__ = ["VerifyProgress", "answer_seed", "collect_verification"]


def answer_seed(base: int, question_id: str, sample: int) -> int:
    """A 31-bit request seed unique to (run seed, question, sample), stable across processes."""
    digest = hashlib.blake2b(f"{base}\0{question_id}\0{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


@dataclass
class VerifyProgress(Timed):
    """Live counters: answers and judgements stored (before and during this session).

    ``stored_before``: answers plus judgements already stored when the session
    began; ``unreadable``: replies whose body could not be read (asked again);
    ``model`` / ``judge``: the traffic counters of the two transports
    (requests, retries, tokens, estimated cost in US dollars).
    """

    answers_total: int = 0
    answers_done: int = 0
    judgments_total: int = 0
    judgments_done: int = 0
    stored_before: int = 0
    unreadable: int = 0
    model: TrafficStats = field(default_factory=TrafficStats)
    judge: TrafficStats = field(default_factory=TrafficStats)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def done(self) -> int:
        """Answers and judgements stored this session."""
        return self.answers_done + self.judgments_done - self.stored_before

    @property
    def requests(self) -> int:
        return self.model.requests + self.judge.requests

    @property
    def retries(self) -> int:
        return self.model.retries + self.judge.retries

    @property
    def prompt_tokens(self) -> int:
        return self.model.prompt_tokens + self.judge.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.model.completion_tokens + self.judge.completion_tokens

    @property
    def cost_usd(self) -> float:
        return self.model.cost_usd + self.judge.cost_usd

    def progress_counts(self) -> str:
        """The verify part of the progress detail: answers and judgements stored."""
        return (
            f"answers {self.answers_done}/{self.answers_total} "
            f"judgements {self.judgments_done}/{self.judgments_total}"
        )

    def pause_note(self) -> str:
        """The model's or the judge's retry pause (``paused 12 s (rate limit)``), else ''."""
        if self.finished is not None:
            return ""
        return pause_note(self.model) or pause_note(self.judge)

    def line(self) -> str:
        return (
            f"answers {self.answers_done}/{self.answers_total}, judgements "
            f"{self.judgments_done}/{self.judgments_total} ({self.requests} requests, "
            f"{self.retries} retries, {self.elapsed_s:.1f} s)"
        )


class _OverBudget(Exception):
    """Internal: the shared budget refused a request; this task stops quietly."""


@dataclass
class _Sender:
    """One transport with the name used in error lines (``model X`` / ``judge X``)."""

    transport: Transport
    who: str
    progress: VerifyProgress
    max_unreadable: int

    async def ask(self, request: ChatRequest) -> ChatResult:
        """The reply; unreadable replies are asked again (at most ``max_unreadable`` times)."""
        tally = RequestTally()
        for _ in range(self.max_unreadable + 1):
            try:
                result = await self.transport.send(request, tally)
            except TransportStop as stop:
                if stop.reason == "max-cost":
                    raise _OverBudget from None
                if stop.reason in ("fatal", "retry-after"):
                    raise ConfigError(f"{self.who}: {stop.message}") from None
                raise self._kept_failing(stop.what, stop.retries) from None
            if result is not None:
                return result
            self.progress.unreadable += 1
        raise self._kept_failing(tally.bad_answer or "unreadable reply", self.max_unreadable)

    def _kept_failing(self, what: str, retries: int) -> ConfigError:
        return ConfigError(
            f"{self.who} kept failing ({what}) after {retries} retries; "
            "run the same command again later to resume"
        )


@dataclass
class _Work:
    """What every answer and judgement task of one session shares."""

    store: VerifyStore
    run_id: str
    protocol: VerifyProtocol
    questions: QuestionSet
    seed: int
    model: _Sender
    judge: _Sender
    progress: VerifyProgress
    display: ProgressDisplay

    def shown(self) -> None:
        self.display.update(self.progress)

    async def judge_one(self, answer: StoredAnswer, aspect: str) -> None:
        question = self.questions.by_id(answer.question_id)
        protocol = self.protocol
        prompt = render_judge_prompt(question.judge_prompts[aspect], answer.prompt, answer.answer)
        request = ChatRequest(
            messages=[{"role": "user", "content": prompt}],
            temperature=protocol.judge_temperature,
            max_tokens=protocol.judge_max_tokens,
            top_logprobs=protocol.judge_top_logprobs,
            timeout_s=protocol.timeout_s,
        )
        result = await self.judge.ask(request)
        if protocol.scoring == "logprobs":
            score = score_logprobs(result.top_logprobs)
        else:
            score = score_text(result.text)
        self.store.add_judgment(
            self.run_id,
            StoredJudgment(
                answer.question_id,
                answer.sample,
                aspect,
                score,
                raw=result.text,
                top_logprobs=None if result.top_logprobs is None else list(result.top_logprobs),
                collected_at=now_utc(),
            ),
        )
        self.progress.judgments_done += 1
        self.shown()

    async def answer_one(self, question_id: str, sample: int) -> StoredAnswer:
        question = self.questions.by_id(question_id)
        request = ChatRequest(
            messages=question.messages(sample - 1),
            temperature=self.protocol.temperature,
            max_tokens=self.protocol.max_tokens,
            seed=answer_seed(self.seed, question_id, sample),
            timeout_s=self.protocol.timeout_s,
        )
        started = time.monotonic()
        result = await self.model.ask(request)
        answer = StoredAnswer(
            question_id,
            sample,
            question.paraphrase(sample - 1),
            result.text,
            result.finish_reason,
            result.prompt_tokens or None,
            result.completion_tokens or None,
            (time.monotonic() - started) * 1000.0,
            now_utc(),
        )
        self.store.add_answer(self.run_id, answer)
        self.progress.answers_done += 1
        self.shown()
        return answer


def _price_needed(max_cost_usd: float | None, who: str, price: Pricing | None) -> None:
    if max_cost_usd is not None and price is None:
        raise ConfigError(
            f"--max-cost needs a price for {who} and none is known; "
            "add one to the file named in PERSONA_COLLAPSE_PRICES"
        )


async def collect_verification(
    model: Backend,
    judge: Backend,
    store: VerifyStore,
    run_id: str,
    questions: QuestionSet,
    protocol: VerifyProtocol,
    *,
    concurrency: int = 8,
    judge_concurrency: int | None = None,
    seed: int = 0,
    policy: BackoffPolicy | None = None,
    stream: TextIO | None = None,
    quiet: bool = False,
    max_cost_usd: float | None = None,
    model_price: Pricing | None = None,
    judge_price: Pricing | None = None,
) -> VerifyProgress:
    """Fill every missing answer and judgement of ``run_id`` (samples ``1..protocol.samples``).

    ``max_cost_usd``: one limit (US dollars) on the estimated cost of model
    and judge requests together; it needs ``model_price`` and ``judge_price``
    (anything with ``cost(prompt_tokens, completion_tokens) -> float``).
    Raises :class:`ConfigError` (one line) when a request is fatal, keeps
    failing, or the budget stops the run; everything that arrived before is
    stored.
    """
    model_who, judge_who = f"model {model.spec.full}", f"judge {judge.spec.full}"
    _price_needed(max_cost_usd, model_who, model_price)
    _price_needed(max_cost_usd, judge_who, judge_price)
    policy = policy or BackoffPolicy()
    stored = _Stored.of(store, run_id, questions, protocol.samples)
    progress = stored.progress()
    display = ProgressDisplay(
        f"verify {run_id}",
        total=progress.answers_total + progress.judgments_total,
        stored_before=progress.stored_before,
        priced=model_price is not None and judge_price is not None,
        stream=stream,
        quiet=quiet,
        unit="answers and judgements",
    )
    budget = CostBudget(max_cost_usd)

    def sender(
        backend: Backend, limit: int, price: Pricing | None, stats: TrafficStats, who: str
    ) -> _Sender:
        transport = Transport(
            backend,
            limit=limit,
            policy=policy,
            price=price,
            budget=budget,
            seed=seed,
            stats=stats,
            on_update=lambda: display.update(progress),
        )
        return _Sender(transport, who, progress, policy.max_retries)

    work = _Work(
        store,
        run_id,
        protocol,
        questions,
        seed,
        model=sender(model, concurrency, model_price, progress.model, model_who),
        judge=sender(
            judge, judge_concurrency or concurrency, judge_price, progress.judge, judge_who
        ),
        progress=progress,
        display=display,
    )
    await _fill(work, stored)
    if budget.exhausted:
        raise _stopped_by_budget(max_cost_usd, progress)
    return progress


@dataclass
class _Stored:
    """What a session finds stored: answers and judgements by key, and the slots it wants."""

    answers: dict[tuple[str, int], StoredAnswer]
    judgments: dict[tuple[str, int, str], StoredJudgment]
    wanted: list[tuple[str, int]]

    @classmethod
    def of(cls, store: VerifyStore, run_id: str, questions: QuestionSet, samples: int) -> _Stored:
        wanted = [(q.id, s) for q in questions.questions for s in range(1, samples + 1)]
        return cls(store.answers(run_id), store.judgments(run_id), wanted)

    def progress(self) -> VerifyProgress:
        """Fresh counters: totals, and what is already stored (``stored_before``)."""
        wanted = self.wanted
        progress = VerifyProgress(
            answers_total=len(wanted),
            answers_done=sum(key in self.answers for key in wanted),
            judgments_total=len(wanted) * len(ASPECTS),
            judgments_done=sum((q, s, a) in self.judgments for q, s in wanted for a in ASPECTS),
        )
        progress.stored_before = progress.answers_done + progress.judgments_done
        return progress


async def _fill(work: _Work, stored: _Stored) -> None:
    """Answer every wanted slot not yet answered and judge every answer not yet judged.

    A budget stop ends each task quietly (the requests in flight still finish);
    any other error stops the session with its first leaf (a ConfigError first).
    """

    async def judge_quietly(answer: StoredAnswer, aspect: str) -> None:
        with contextlib.suppress(_OverBudget):  # the other requests in flight still finish
            await work.judge_one(answer, aspect)

    async def slot(question_id: str, sample: int) -> None:
        answer = stored.answers.get((question_id, sample))
        if answer is None:
            try:
                answer = await work.answer_one(question_id, sample)
            except _OverBudget:
                return
        async with asyncio.TaskGroup() as group:
            for aspect in ASPECTS:
                if (answer.question_id, answer.sample, aspect) not in stored.judgments:
                    group.create_task(judge_quietly(answer, aspect))

    progress = work.progress
    progress.started = time.monotonic()
    work.display.start()
    try:
        async with asyncio.TaskGroup() as group:
            for question_id, sample in stored.wanted:
                group.create_task(slot(question_id, sample))
    except BaseExceptionGroup as group_error:
        raise _first_leaf(group_error) from None
    finally:
        progress.finished = time.monotonic()
        work.display.stop(progress)


def _stopped_by_budget(max_cost_usd: float | None, progress: VerifyProgress) -> ConfigError:
    return ConfigError(
        f"--max-cost ${max_cost_usd:g} stopped the run before the estimated cost passed it "
        f"({progress.answers_done} of {progress.answers_total} answers, "
        f"{progress.judgments_done} of {progress.judgments_total} judgements stored); "
        "run the same command again with a higher --max-cost to resume"
    )


def _leaves(error: BaseException) -> list[BaseException]:
    """The non-group exceptions inside ``error`` (itself if it is not a group)."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _first_leaf(error: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first non-group exception, preferring a ConfigError (the one-line stop reason)."""
    leaves = _leaves(error)
    for leaf in leaves:
        if isinstance(leaf, ConfigError):
            return leaf
    return leaves[0]

"""Asking the model the questions and the judge about each answer, resumably.

For every (question, sample) not yet answered the model is asked at the
protocol's temperature (default T = 1); each answer is committed to the store
the moment it arrives and its two judgements (``aligned``, ``coherent``) are
queued at once. Answers already stored but not yet judged are judged. Model
and judge requests have their own concurrency limits.

Transport failures (429, 5xx, timeouts, unreadable bodies) are retried with
the runner's :class:`~persona_collapse.collect.BackoffPolicy`; a request that
uses up its retries, or any ``Fatal`` decision (bad key, unknown model), stops
the run with one :class:`ConfigError` line. What was stored stays stored:
running the same command again continues.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from ..backends import Backend, BackendError, BadAnswer, ChatRequest, ChatResult, Fatal, Retry
from ..collect import BackoffPolicy
from ..errors import ConfigError
from ._protocol import VerifyProtocol
from ._questions import ASPECTS, QuestionSet, render_judge_prompt
from ._scoring import score_logprobs, score_text
from ._store import StoredAnswer, StoredJudgment, VerifyStore, now_utc

__all__ = ["VerifyProgress", "answer_seed", "collect_verification"]


def answer_seed(base: int, question_id: str, sample: int) -> int:
    """A 31-bit request seed unique to (run seed, question, sample), stable across processes."""
    digest = hashlib.blake2b(f"{base}\0{question_id}\0{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


@dataclass
class VerifyProgress:
    """Live counters: answers and judgements stored (before and during this session)."""

    answers_total: int = 0
    answers_done: int = 0
    judgments_total: int = 0
    judgments_done: int = 0
    requests: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        return (
            f"answers {self.answers_done}/{self.answers_total}, judgements "
            f"{self.judgments_done}/{self.judgments_total} ({self.requests} requests, "
            f"{self.retries} retries, {elapsed:.1f} s)"
        )


class _Asker:
    """Sends one request with transport retries; maps failures to ConfigError lines."""

    def __init__(
        self,
        policy: BackoffPolicy,
        progress: VerifyProgress,
        seed: int,
        on_update: Callable[[], None],
    ) -> None:
        self.policy = policy
        self.progress = progress
        self.rng = random.Random(seed)
        self.on_update = on_update

    async def ask(
        self, backend: Backend, request: ChatRequest, sem: asyncio.Semaphore, who: str
    ) -> ChatResult:
        retries = 0
        while True:
            async with sem:
                self.progress.requests += 1
                try:
                    return await backend.complete(request)
                except BackendError as exc:
                    decision = exc.decision
            if isinstance(decision, Fatal):
                raise ConfigError(f"{who}: {decision.message}")
            if self.policy.give_up(retries):
                detail = decision.detail if isinstance(decision, Retry | BadAnswer) else ""
                raise ConfigError(
                    f"{who} kept failing ({detail or type(decision).__name__}) after {retries} "
                    "retries; run the same command again later to resume"
                )
            after = decision.after_s if isinstance(decision, Retry) else None
            await asyncio.sleep(self.policy.delay(retries, self.rng, after))
            retries += 1
            self.progress.retries += 1
            self.on_update()


async def _judge_one(
    asker: _Asker,
    judge: Backend,
    sem: asyncio.Semaphore,
    store: VerifyStore,
    run_id: str,
    protocol: VerifyProtocol,
    template: str,
    answer: StoredAnswer,
    aspect: str,
) -> None:
    prompt = render_judge_prompt(template, answer.prompt, answer.answer)
    request = ChatRequest(
        messages=[{"role": "user", "content": prompt}],
        temperature=protocol.judge_temperature,
        max_tokens=protocol.judge_max_tokens,
        top_logprobs=protocol.judge_top_logprobs,
        timeout_s=protocol.timeout_s,
    )
    result = await asker.ask(judge, request, sem, f"judge {judge.spec.full}")
    if protocol.scoring == "logprobs":
        score = score_logprobs(result.top_logprobs)
    else:
        score = score_text(result.text)
    store.add_judgment(
        run_id,
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
    asker.progress.judgments_done += 1
    asker.on_update()


async def _answer_one(
    asker: _Asker,
    model: Backend,
    sem: asyncio.Semaphore,
    store: VerifyStore,
    run_id: str,
    protocol: VerifyProtocol,
    questions: QuestionSet,
    question_id: str,
    sample: int,
    seed: int,
) -> StoredAnswer:
    question = questions.by_id(question_id)
    request = ChatRequest(
        messages=question.messages(sample - 1),
        temperature=protocol.temperature,
        max_tokens=protocol.max_tokens,
        seed=answer_seed(seed, question_id, sample),
        timeout_s=protocol.timeout_s,
    )
    started = time.monotonic()
    result = await asker.ask(model, request, sem, f"model {model.spec.full}")
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
    store.add_answer(run_id, answer)
    asker.progress.answers_done += 1
    asker.on_update()
    return answer


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
) -> VerifyProgress:
    """Fill every missing answer and judgement of ``run_id`` (samples ``1..protocol.samples``).

    Raises :class:`ConfigError` (one line) when a request is fatal or keeps
    failing; everything that arrived before is stored.
    """
    answers = store.answers(run_id)
    judgments = store.judgments(run_id)
    wanted = [(q.id, s) for q in questions.questions for s in range(1, protocol.samples + 1)]
    progress = VerifyProgress(
        answers_total=len(wanted),
        answers_done=sum(key in answers for key in wanted),
        judgments_total=len(wanted) * len(ASPECTS),
        judgments_done=sum((q, s, a) in judgments for q, s in wanted for a in ASPECTS),
    )
    err = stream if stream is not None else sys.stderr
    live = not quiet and err.isatty()
    last = [0.0]

    def on_update() -> None:
        now = time.monotonic()
        if live and now - last[0] >= 0.25:
            last[0] = now
            err.write("\r" + progress.line())
            err.flush()

    asker = _Asker(policy or BackoffPolicy(), progress, seed, on_update)
    model_sem = asyncio.Semaphore(concurrency)
    judge_sem = asyncio.Semaphore(judge_concurrency or concurrency)

    async def judge_all(answer: StoredAnswer) -> None:
        question = questions.by_id(answer.question_id)
        async with asyncio.TaskGroup() as group:
            for aspect in ASPECTS:
                if (answer.question_id, answer.sample, aspect) not in judgments:
                    group.create_task(
                        _judge_one(
                            asker,
                            judge,
                            judge_sem,
                            store,
                            run_id,
                            protocol,
                            question.judge_prompts[aspect],
                            answer,
                            aspect,
                        )
                    )

    async def slot(question_id: str, sample: int) -> None:
        answer = answers.get((question_id, sample))
        if answer is None:
            answer = await _answer_one(
                asker,
                model,
                model_sem,
                store,
                run_id,
                protocol,
                questions,
                question_id,
                sample,
                seed,
            )
        await judge_all(answer)

    try:
        async with asyncio.TaskGroup() as group:
            for question_id, sample in wanted:
                group.create_task(slot(question_id, sample))
    except BaseExceptionGroup as group_error:
        first = _first_leaf(group_error)
        raise first from None
    finally:
        if live:
            err.write("\r" + progress.line() + "\n")
            err.flush()
    return progress


def _first_leaf(error: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first non-group exception, preferring a ConfigError (the one-line stop reason)."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                walk(inner)
        else:
            leaves.append(e)

    walk(error)
    for leaf in leaves:
        if isinstance(leaf, ConfigError):
            return leaf
    return leaves[0]

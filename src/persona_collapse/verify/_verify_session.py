"""One ``persona-collapse verify`` session: options in, stored answers and a summary out.

Order of work (each step fails with one clear line before anything costly):
questions and protocol, both backends (missing key, bad URL), the store
(a resumed run with other settings is refused), one cheap request to each
server, then the missing answers and judgements, then the statistics over
samples ``1..samples`` of every question.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..backends import (
    Backend,
    BackendError,
    Fatal,
    Price,
    api_key_from_env,
    create_backend,
    parse_model,
    price_for,
    unknown_price_hint,
)
from ..errors import ConfigError
from ..store import DEFAULT_STORE, ResponseStore, RunLease, default_run_id
from ._answer_and_judge import VerifyProgress, collect_verification
from ._judge_protocol import PUBLISHED_JUDGE, VerifyProtocol, published_protocol
from ._questions import ASPECTS, QuestionSet, load_questions
from ._verdicts import JudgedAnswer, VerifySummary, summarise
from ._verify_tables import VerifyRun, VerifyStore

__all__ = [
    "DEFAULT_STORE",
    "VerifyOptions",
    "VerifyOutcome",
    "load_verification",
    "run_verification",
    "verify_lease_id",
]


@dataclass(frozen=True)
class VerifyOptions:
    """Everything ``persona-collapse verify`` accepts (defaults: Costa & Vicente's text protocol).

    ``api_key_env`` / ``judge_api_key_env`` name environment variables holding
    keys (default: each family's, e.g. ``OPENAI_API_KEY``). ``n_boot`` and
    ``seed`` set the bootstrap of the misaligned share (``seed`` also derives
    the per-request seeds of the answers). Values are checked on
    construction (:class:`ConfigError` naming the command-line option).
    """

    model: str
    judge: str = PUBLISHED_JUDGE
    questions: str | None = None
    question_ids: tuple[str, ...] = ()
    samples: int = 30
    scoring: str = "text"
    temperature: float = 1.0
    max_tokens: int | None = None
    store: str = DEFAULT_STORE
    run_id: str | None = None
    base_url: str | None = None
    judge_base_url: str | None = None
    api_key_env: str | None = None
    judge_api_key_env: str | None = None
    concurrency: int = 8
    judge_concurrency: int | None = None
    max_cost: float | None = None
    """Stop before the estimated spend of model and judge together passes this (US dollars)."""
    family: str = ""
    variant: str = ""
    seed: int = 0
    n_boot: int = 10_000
    timeout_s: float = 120.0
    quiet: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` (naming the option) for a value out of range.

        The protocol's own values (samples, temperature, max tokens, timeout)
        are checked by :func:`published_protocol`.
        """
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if self.judge_concurrency is not None and self.judge_concurrency < 1:
            raise ConfigError("--judge-concurrency must be at least 1")
        if self.n_boot < 100:
            raise ConfigError("--n-boot must be at least 100")
        if self.max_cost is not None and not self.max_cost > 0:
            raise ConfigError("--max-cost must be a positive number of US dollars")


@dataclass
class VerifyOutcome:
    """A finished (or resumed) verification: the run, its protocol and statistics."""

    run: VerifyRun
    store_path: str
    protocol: VerifyProtocol
    questions: QuestionSet
    summary: VerifySummary
    answers_stored: int
    judgments_stored: int
    progress: VerifyProgress | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        want = len(self.questions) * self.protocol.samples
        return self.answers_stored >= want and self.judgments_stored >= want * len(ASPECTS)

    def document(self) -> dict[str, Any]:
        """The JSON document of ``verify --format json``."""
        return {
            "run_id": self.run.run_id,
            "store": self.store_path,
            "model": self.run.model,
            "judge": self.run.judge,
            "family": self.run.family,
            "variant": self.run.variant,
            "scoring": self.protocol.scoring,
            "samples_per_question": self.protocol.samples,
            "questions": self.questions.ids,
            "question_source": self.questions.source,
            "protocol": {
                "temperature": self.protocol.temperature,
                "max_tokens": self.protocol.max_tokens,
                "judge_temperature": self.protocol.judge_temperature,
                "judge_max_tokens": self.protocol.judge_max_tokens,
                "judge_top_logprobs": self.protocol.judge_top_logprobs,
            },
            "complete": self.complete,
            "answers_stored": self.answers_stored,
            "judgments_stored": self.judgments_stored,
            **self.summary.as_dict(),
        }


def _run_id(options: VerifyOptions, scoring: str) -> str:
    """``--run-id``, or the store's default ``verify_MODELNAME_SCORING``."""
    if options.run_id:
        return options.run_id
    return default_run_id(parse_model(options.model).name, scoring, prefix="verify")


async def _check(backend: Backend, who: str, timeout_s: float) -> None:
    try:
        await backend.check(timeout_s=timeout_s)
    except BackendError as exc:
        decision = exc.decision
        message = decision.message if isinstance(decision, Fatal) else str(exc)
        raise ConfigError(f"{who}: {message}") from None


def load_verification(
    store: VerifyStore,
    run: VerifyRun,
    questions: QuestionSet,
    protocol: VerifyProtocol,
    *,
    n_boot: int = 10_000,
    seed: int = 0,
) -> tuple[VerifySummary, int, int]:
    """(summary, answers stored, judgements stored) over samples ``1..protocol.samples``."""
    answers = store.answers(run.run_id)
    judgments = store.judgments(run.run_id)
    judged: list[JudgedAnswer] = []
    n_answers = n_judgments = 0
    for q in questions.questions:
        for s in range(1, protocol.samples + 1):
            if (q.id, s) not in answers:
                continue
            n_answers += 1
            pair = [judgments.get((q.id, s, a)) for a in ASPECTS]
            n_judgments += sum(j is not None for j in pair)
            aligned, coherent = pair
            if aligned is not None and coherent is not None:
                judged.append(JudgedAnswer(q.id, s, aligned.score, coherent.score))
    summary = summarise(judged, n_boot=n_boot, seed=seed, question_order=questions.ids)
    return summary, n_answers, n_judgments


def verify_lease_id(run_id: str) -> str:
    """The lease key of verification run ``run_id`` (``verify:RUN_ID``).

    Run ids contain no ``:``, so a verification run never shares a lease with
    a questionnaire run of the same id.
    """
    return f"verify:{run_id}"


@dataclass(frozen=True)
class _Session:
    """What a verification needs once its options are checked: nothing costly has run yet."""

    questions: QuestionSet
    protocol: VerifyProtocol
    model: Backend
    judge: Backend
    model_price: Price | None
    judge_price: Price | None
    run: VerifyRun


def _backends(options: VerifyOptions) -> tuple[Backend, Backend]:
    """The model's and the judge's backend (a missing key or bad model name fails here)."""
    model = _backend(options, options.model, options.base_url, options.api_key_env, "")
    judge = _backend(
        options, options.judge, options.judge_base_url, options.judge_api_key_env, "judge-"
    )
    return model, judge


def _backend(
    options: VerifyOptions, spec: str, base_url: str | None, api_key_env: str | None, flag: str
) -> Backend:
    """One endpoint's backend; ``flag`` prefixes the key option named in errors (``judge-``)."""
    return create_backend(
        spec,
        base_url=base_url,
        api_key=api_key_from_env(api_key_env, option=f"--{flag}api-key-env"),
        api_key_env=api_key_env,
        seed=options.seed,
        timeout_s=options.timeout_s,
    )


def _prepare(options: VerifyOptions) -> _Session:
    """Questions, protocol, backends, prices and the run record; ConfigError on any misfit."""
    questions = load_questions(options.questions, list(options.question_ids) or None)
    protocol = published_protocol(
        options.scoring,
        samples=options.samples,
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        timeout_s=options.timeout_s,
    )
    model, judge = _backends(options)
    if protocol.scoring == "logprobs" and not judge.supports_logprobs:
        raise ConfigError(
            f"judge {options.judge} returns no logprobs; use --scoring text or another judge"
        )
    model_price, judge_price = price_for(options.model), price_for(options.judge)
    if options.max_cost is not None and (model_price is None or judge_price is None):
        unknown = options.model if model_price is None else options.judge
        raise ConfigError(
            f"--max-cost needs a known price for {unknown} and there is none; "
            + unknown_price_hint(unknown)
        )
    run = VerifyRun(
        run_id=_run_id(options, protocol.scoring),
        model=options.model.strip(),
        judge=options.judge.strip(),
        scoring=protocol.scoring,
        family=options.family,
        variant=options.variant,
        settings={
            **protocol.fingerprint(),
            "questions_sha256": questions.sha256,
            "question_ids": questions.ids,
        },
    )
    return _Session(questions, protocol, model, judge, model_price, judge_price, run)


async def _collect(
    options: VerifyOptions,
    session: _Session,
    store: VerifyStore,
    run_id: str,
    stream: TextIO | None,
) -> VerifyProgress:
    """Check both servers, then ask and judge what is missing; the backends are closed after."""
    model, judge = session.model, session.judge
    try:
        await _check(model, f"model {options.model}", min(options.timeout_s, 60.0))
        await _check(judge, f"judge {options.judge}", min(options.timeout_s, 60.0))
        return await collect_verification(
            model,
            judge,
            store,
            run_id,
            session.questions,
            session.protocol,
            concurrency=options.concurrency,
            judge_concurrency=options.judge_concurrency,
            max_cost_usd=options.max_cost,
            model_price=session.model_price,
            judge_price=session.judge_price,
            seed=options.seed,
            stream=stream,
            quiet=options.quiet,
        )
    finally:
        await model.aclose()
        if judge is not model:
            await judge.aclose()


def run_verification(options: VerifyOptions, *, stream: TextIO | None = None) -> VerifyOutcome:
    """Answer, judge and summarise (resuming run ``options.run_id`` if it exists).

    One writer per run: the session holds the store's lease on
    :func:`verify_lease_id` of the run id while it asks, and gives it up at the
    end, after an error and on Ctrl-C; a second writer of a live run stops
    with :class:`~persona_collapse.store.LeaseHeldError` (a DataError, exit 2).

    Raises :class:`ConfigError` / :class:`DataError` (one line) for unusable
    options, a rejected resume, a held lease and fatal backend errors (after
    storing what arrived).
    """
    session = _prepare(options)
    questions, protocol = session.questions, session.protocol
    with ResponseStore(options.store) as response_store:
        store = VerifyStore(response_store)
        stored_run = store.ensure_run(session.run)
        lease = RunLease(response_store, verify_lease_id(stored_run.run_id), note=stream)
        with lease:  # released after an error and on Ctrl-C too
            work = _collect(options, session, store, stored_run.run_id, stream)
            progress = asyncio.run(lease.keep_while(work))
        summary, n_answers, n_judgments = load_verification(
            store, stored_run, questions, protocol, n_boot=options.n_boot, seed=options.seed
        )
    return VerifyOutcome(
        run=stored_run,
        store_path=str(options.store),
        protocol=protocol,
        questions=questions,
        summary=summary,
        answers_stored=n_answers,
        judgments_stored=n_judgments,
        progress=progress,
    )

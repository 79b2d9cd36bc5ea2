"""Emergent-misalignment verification: free-form questions judged for alignment and coherence.

A model answers the 8 free-form questions of Betley et al. 2025 (packaged,
MIT licence) at T = 1; a judge model scores every answer for alignment and
coherence (0-100) with the original judge prompts; the scores are read with
one of the two published rules (:mod:`._scoring`) and summarised with means
+- SE, the misaligned share with a bootstrap CI, and both published verdicts
(:mod:`._verdicts`). Answers and judgements are stored as they arrive
(:class:`VerifyStore`), so a run resumes where it stopped.

Entry point: :func:`run_verification` (what ``persona-collapse verify`` does).
"""

from ._answer_and_judge import VerifyProgress, answer_seed, collect_verification
from ._judge_protocol import PUBLISHED_JUDGE, VerifyProtocol, published_protocol
from ._questions import (
    ASPECTS,
    DEFAULT_QUESTIONS,
    EvalQuestion,
    QuestionSet,
    load_questions,
    render_judge_prompt,
)
from ._scoring import LOGPROB_MIN_MASS, JudgeScore, Scoring, score_logprobs, score_text
from ._verdicts import (
    COHERENCE_FLOOR,
    MISALIGNED_ALIGNMENT,
    TEXT_ALIGNMENT_MAX,
    TEXT_COHERENCE_MIN,
    AspectSummary,
    JudgedAnswer,
    ShareSummary,
    VerifySummary,
    betley_verdict,
    share_ci,
    summarise,
    text_verdict,
)
from ._verify_session import (
    VerifyOptions,
    VerifyOutcome,
    load_verification,
    run_verification,
)
from ._verify_tables import StoredAnswer, StoredJudgment, VerifyRun, VerifyStore

__all__ = [
    "ASPECTS",
    "COHERENCE_FLOOR",
    "DEFAULT_QUESTIONS",
    "LOGPROB_MIN_MASS",
    "MISALIGNED_ALIGNMENT",
    "PUBLISHED_JUDGE",
    "TEXT_ALIGNMENT_MAX",
    "TEXT_COHERENCE_MIN",
    "AspectSummary",
    "EvalQuestion",
    "JudgeScore",
    "JudgedAnswer",
    "QuestionSet",
    "Scoring",
    "ShareSummary",
    "StoredAnswer",
    "StoredJudgment",
    "VerifyOptions",
    "VerifyOutcome",
    "VerifyProgress",
    "VerifyProtocol",
    "VerifyRun",
    "VerifyStore",
    "VerifySummary",
    "answer_seed",
    "betley_verdict",
    "collect_verification",
    "load_questions",
    "load_verification",
    "published_protocol",
    "render_judge_prompt",
    "run_verification",
    "score_logprobs",
    "score_text",
    "share_ci",
    "summarise",
    "text_verdict",
]

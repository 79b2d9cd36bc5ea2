"""How judge answers become scores, and scores become the two published verdicts.

* Text scoring (Costa & Vicente): the judge's number is read from its text
  (:func:`score_text`); CODE and REFUSAL answers are excluded.
* Logprob scoring (Betley et al.): the expected score over the judge's top
  next-token logprobs (:func:`score_logprobs`), valid when at least
  :data:`LOGPROB_MIN_MASS` of the mass is on numbers.
* :func:`summarise` gives means +- SE per aspect, the misaligned share with a
  bootstrap CI, and both verdicts (:func:`text_verdict`, :func:`betley_verdict`).
Scores are 0-100.
"""

from ._questions import ASPECTS, DEFAULT_QUESTIONS
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

__all__ = [
    "ASPECTS",
    "COHERENCE_FLOOR",
    "DEFAULT_QUESTIONS",
    "LOGPROB_MIN_MASS",
    "MISALIGNED_ALIGNMENT",
    "TEXT_ALIGNMENT_MAX",
    "TEXT_COHERENCE_MIN",
    "AspectSummary",
    "JudgeScore",
    "JudgedAnswer",
    "Scoring",
    "ShareSummary",
    "VerifySummary",
    "betley_verdict",
    "score_logprobs",
    "score_text",
    "share_ci",
    "summarise",
    "text_verdict",
]

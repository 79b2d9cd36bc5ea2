"""Emergent-misalignment verification: free-form questions judged for alignment and coherence.

A model answers the 8 free-form questions of Betley et al. 2025 (packaged,
MIT licence) at T = 1; a judge model scores every answer for alignment and
coherence (0-100) with the original judge prompts; the scores are read with
one of the two published rules and summarised with means
+- SE, the misaligned share with a bootstrap CI, and both published verdicts
(:mod:`._verdicts`). Answers and judgements are stored as they arrive
(:class:`VerifyStore`), so a run resumes where it stopped.

Entry point: :func:`run_verification` (what ``persona-collapse verify`` does).
The scoring rules, thresholds and statistics are public in
:mod:`persona_collapse.verify.scoring`.
"""

from ._answer_and_judge import VerifyProgress, collect_verification
from ._judge_protocol import PUBLISHED_JUDGE, VerifyProtocol, published_protocol
from ._questions import EvalQuestion, QuestionSet, load_questions, render_judge_prompt
from ._verdicts import VerifySummary
from ._verify_session import (
    VerifyOptions,
    VerifyOutcome,
    load_verification,
    run_verification,
    verify_lease_id,
)
from ._verify_tables import VerifyRun, VerifyStore

__all__ = [
    "PUBLISHED_JUDGE",
    "EvalQuestion",
    "QuestionSet",
    "VerifyOptions",
    "VerifyOutcome",
    "VerifyProgress",
    "VerifyProtocol",
    "VerifyRun",
    "VerifyStore",
    "VerifySummary",
    "collect_verification",
    "load_questions",
    "load_verification",
    "published_protocol",
    "render_judge_prompt",
    "run_verification",
    "verify_lease_id",
]

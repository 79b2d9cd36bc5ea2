"""Verification runs in the response store: answers and judgements, committed as they arrive.

Three tables live beside the store's ``runs`` and ``responses`` in the same
SQLite file, declared (and versioned) by the store's schema:

* ``verify_runs``: one row per verification run (model, judge, scoring rule,
  family/variant, settings as JSON);
* ``verify_answers``: one row per (run, question, sample), the model's answer;
* ``verify_judgments``: one row per (run, question, sample, aspect), the
  judge's label, score (0-100) and raw output.

Keys make writing a slot twice impossible, so re-running a run id asks only
what is missing: unanswered samples, then unjudged answers. ``sample`` is
1-based like the published ``run_index``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .._version import __version__
from ..errors import DataError
from ..store import TABLE_COLUMNS, ResponseStore, VerifyRows, check_run_id, now_utc
from ._scoring import JudgeScore

__all__ = ["StoredAnswer", "StoredJudgment", "VerifyRun", "VerifyStore", "now_utc"]

_RUN_COLUMNS = TABLE_COLUMNS["verify_runs"]
COMPARED = ("model", "judge", "scoring", "settings")
"""Fields that must match when a verification run is resumed."""


@dataclass
class VerifyRun:
    """One verification run. ``settings``: protocol and question-set fingerprint (JSON)."""

    run_id: str
    model: str
    judge: str
    scoring: str
    family: str = ""
    variant: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    tool_version: str = __version__
    created: str = ""


@dataclass(frozen=True)
class _OfSample:
    """Which answer a stored row is about: sample ``sample`` (1-based) of question
    ``question_id`` (the key of ``verify_answers``, and with the aspect of ``verify_judgments``)."""

    question_id: str
    sample: int


@dataclass(frozen=True)
class StoredAnswer(_OfSample):
    """A model's answer to sample ``sample`` (1-based) of question ``question_id``."""

    prompt: str
    answer: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    collected_at: str = ""


@dataclass(frozen=True)
class StoredJudgment(_OfSample):
    """The judge's verdict on one aspect (``aligned`` / ``coherent``) of one answer."""

    aspect: str
    score: JudgeScore
    raw: str | None = None
    top_logprobs: list[tuple[str, float]] | None = None
    collected_at: str = ""


class VerifyStore:
    """The verification tables of an open :class:`ResponseStore`.

    Works on the store's connection and lock (the store's schema creates the
    tables); the caller opens and closes the store. One object may be shared
    by the threads of a run.
    """

    def __init__(self, store: ResponseStore) -> None:
        self._rows = VerifyRows(store)
        self.path = store.path

    # -- runs ----------------------------------------------------------------

    def get_run(self, run_id: str) -> VerifyRun | None:
        """The verification run with this id, or None."""
        row = self._rows.run(run_id)
        if row is None:
            return None
        values = dict(zip(_RUN_COLUMNS, row, strict=True))
        values["settings"] = json.loads(values["settings"])
        return VerifyRun(**values)

    def list_runs(self) -> list[VerifyRun]:
        """Every verification run, oldest first."""
        runs = [self.get_run(i) for i in self._rows.run_ids()]
        return [r for r in runs if r is not None]

    def ensure_run(self, run: VerifyRun) -> VerifyRun:
        """The stored run with ``run``'s id, created if new; DataError if it differs.

        Fields in :data:`COMPARED` must match (``settings`` compared as JSON);
        family and variant labels of a new invocation replace empty stored ones.
        """
        check_run_id(run.run_id)
        values = dataclasses.asdict(run)
        values["created"] = run.created or now_utc()
        values["settings"] = json.dumps(run.settings, sort_keys=True)
        settings = values["settings"]
        self._rows.ensure_run([values[c] for c in _RUN_COLUMNS])
        if run.family or run.variant:
            self._rows.fill_labels(run.run_id, run.family, run.variant)
        stored = self.get_run(run.run_id)
        assert stored is not None
        new_settings = json.loads(settings)
        differing = [
            name
            for name in COMPARED
            if (stored.settings if name == "settings" else getattr(stored, name))
            != (new_settings if name == "settings" else getattr(run, name))
        ]
        if differing:
            detail = "; ".join(
                _difference(name, getattr(stored, name), getattr(run, name)) for name in differing
            )
            raise DataError(
                f"verification run {run.run_id!r} was started differently ({detail}); "
                "use a new --run-id or the original options"
            )
        return stored

    # -- answers and judgements ----------------------------------------------

    def add_answer(self, run_id: str, answer: StoredAnswer) -> bool:
        """Store one answer (committed); False if that sample was already stored."""
        return self._rows.add_answer(
            (
                run_id,
                answer.question_id,
                int(answer.sample),
                answer.prompt,
                answer.answer,
                answer.finish_reason,
                answer.prompt_tokens,
                answer.completion_tokens,
                answer.latency_ms,
                answer.collected_at or now_utc(),
            )
        )

    def add_judgment(self, run_id: str, judgment: StoredJudgment) -> bool:
        """Store one judgement (committed); False if it was already stored."""
        top = None if judgment.top_logprobs is None else json.dumps(judgment.top_logprobs)
        return self._rows.add_judgment(
            (
                run_id,
                judgment.question_id,
                int(judgment.sample),
                judgment.aspect,
                judgment.score.label,
                judgment.score.score,
                judgment.score.mass,
                judgment.raw,
                top,
                judgment.collected_at or now_utc(),
            )
        )

    def answers(self, run_id: str) -> dict[tuple[str, int], StoredAnswer]:
        """Stored answers of a run by (question_id, sample)."""
        rows = self._rows.answers(run_id)
        return {(str(r[0]), int(r[1])): StoredAnswer(*r) for r in rows}

    def judgments(self, run_id: str) -> dict[tuple[str, int, str], StoredJudgment]:
        """Stored judgements of a run by (question_id, sample, aspect)."""
        rows = self._rows.judgments(run_id)
        out: dict[tuple[str, int, str], StoredJudgment] = {}
        for qid, sample, aspect, label, score, mass, raw, top, at in rows:
            top_list = None if top is None else [(str(t), float(lp)) for t, lp in json.loads(top)]
            out[(str(qid), int(sample), str(aspect))] = StoredJudgment(
                str(qid),
                int(sample),
                str(aspect),
                JudgeScore(label, score, mass),
                raw,
                top_list,
                at,
            )
        return out


def _difference(name: str, old: Any, new: Any) -> str:
    if name != "settings" or not isinstance(old, dict) or not isinstance(new, dict):
        return f"{name} {old!r}, now {new!r}"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r}, now {new.get(k)!r}" for k in keys)

"""How an instrument is asked: its kind, answer parser, request and attempt policy.

Declared in the instrument's JSON under ``"elicitation"``; every field has a
default (the published questionnaire protocol), so a file without the block
loads as before and keeps its content hash (defaults are left out of the hash).

* ``kind``: ``questionnaire`` (persona and self templates) or ``task`` (the
  item's prompt alone, one plain user message; personas are not used).
* ``parser``: the name of the answer parser (questionnaires: ``scale-digit``,
  a single scale digit per one-token reply, the first standalone scale
  integer in the longer fallback; tasks: ``letter``, the first answer label
  anywhere in the reply, or ``number``, the GSM8K final number). The parsers
  live in :mod:`persona_collapse.protocol`.
* ``answers``: a multiple-choice task's answer labels (e.g. ``["A", "B", "C",
  "D"]``; empty for a free answer such as a number). A task's stored rating
  is its score: 1 correct (the parsed answer equals the item's gold
  ``answer``), 0 wrong, -1 no parsed answer; the parsed answer and the gold
  are stored in the row's ``extra``.
* ``max_tokens``: completion tokens of a normal attempt (the fallback's length
  is ``ProtocolSettings.fallback_max_tokens``).
* ``logprobs``: whether the logprob method applies.
* ``attempt_policy``: ``until-answered`` (published: up to
  ``ProtocolSettings.max_attempts`` attempts, then one longer fallback) or
  ``once`` (one attempt; an unparsable reply is a format failure, stored as
  missing, never retried).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from ..errors import DataError

Kind = Literal["questionnaire", "task"]
AttemptPolicy = Literal["until-answered", "once"]

KINDS: tuple[Kind, ...] = ("questionnaire", "task")
ATTEMPT_POLICIES: tuple[AttemptPolicy, ...] = ("until-answered", "once")


@dataclass(frozen=True)
class Elicitation:
    """An instrument's way of being asked (see the module doc); defaults are the published MFQ's."""

    kind: Kind = "questionnaire"
    parser: str = "scale-digit"
    answers: tuple[str, ...] = ()
    max_tokens: int = 1
    logprobs: bool = True
    attempt_policy: AttemptPolicy = "until-answered"

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Elicitation:
        """The block as written in JSON (None or missing keys: the defaults)."""
        data = dict(data or {})
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise DataError(f"unknown elicitation fields {sorted(unknown)}")
        default = cls()
        out = cls(
            kind=data.get("kind", default.kind),
            parser=str(data.get("parser", default.parser)),
            answers=tuple(str(a) for a in data.get("answers", default.answers)),
            max_tokens=int(data.get("max_tokens", default.max_tokens)),
            logprobs=bool(data.get("logprobs", default.logprobs)),
            attempt_policy=data.get("attempt_policy", default.attempt_policy),
        )
        out._validate()
        return out

    def _validate(self) -> None:
        if self.kind not in KINDS:
            raise DataError(
                f"elicitation kind must be one of {', '.join(KINDS)}, not {self.kind!r}"
            )
        if self.attempt_policy not in ATTEMPT_POLICIES:
            raise DataError(
                f"attempt_policy must be one of {', '.join(ATTEMPT_POLICIES)}, "
                f"not {self.attempt_policy!r}"
            )
        if self.max_tokens < 1:
            raise DataError("elicitation max_tokens must be at least 1")
        if self.kind == "task" and len(self.answers) == 1:
            raise DataError("a multiple-choice task needs at least two answer labels ('answers')")
        if self.kind == "task" and self.parser == "letter" and not self.answers:
            raise DataError("the letter parser needs the answer labels ('answers')")
        if len(set(self.answers)) != len(self.answers):
            raise DataError("elicitation answer labels are not unique")


def hashed_definition(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the elicitation fields that equal their defaults left out.

    The content hash covers this, so adding the published defaults explicitly
    to an instrument file does not change its hash (stored runs compare it on
    resume).
    """
    block = data.get("elicitation")
    if not isinstance(block, dict):
        return data
    default = Elicitation()
    kept = {
        k: v
        for k, v in block.items()
        if not (hasattr(default, k) and _plain(getattr(default, k)) == v)
    }
    out = {k: v for k, v in data.items() if k != "elicitation"}
    if kept:
        out["elicitation"] = kept
    return out


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value

"""Answer parsers by name: how an instrument's replies become a stored rating.

An instrument names its parser (``elicitation.parser``); a parser reads a
normal attempt's reply (``reply``) and the longer fallback's (``fallback``).
Both return the rating to store (an integer on the instrument's scale) or
None when the text holds no answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DataError
from ..instruments import Instrument
from ._parse import parse_fallback, parse_one_token

ReadAnswer = Callable[[str | None, Instrument], int | None]


@dataclass(frozen=True)
class AnswerParser:
    """A named pair of readers: ``reply`` for a normal attempt, ``fallback`` for the longer one."""

    name: str
    reply: ReadAnswer
    fallback: ReadAnswer


def parse_letter(text: str | None, instrument: Instrument) -> int | None:
    """The index of the first answer label (case-insensitive) anywhere in the stripped reply.

    The labels are ``instrument.elicitation.answers`` (one character each, e.g.
    A-D); ``"  b) because"`` reads as 1.
    """
    if not text:
        return None
    labels = [a.upper() for a in instrument.elicitation.answers]
    for char in text.strip():
        if char.upper() in labels:
            return labels.index(char.upper())
    return None


def _scale_reply(text: str | None, instrument: Instrument) -> int | None:
    return parse_one_token(text, instrument.scale)


def _scale_fallback(text: str | None, instrument: Instrument) -> int | None:
    return parse_fallback(text, instrument.scale)


PARSERS: dict[str, AnswerParser] = {
    "scale-digit": AnswerParser("scale-digit", _scale_reply, _scale_fallback),
    "letter": AnswerParser("letter", parse_letter, parse_letter),
}
"""Every parser an instrument may name."""


def answer_parser(name: str) -> AnswerParser:
    """The parser called ``name``; DataError for an unknown one."""
    try:
        return PARSERS[name]
    except KeyError:
        raise DataError(
            f"unknown answer parser {name!r}: use one of {', '.join(sorted(PARSERS))}"
        ) from None

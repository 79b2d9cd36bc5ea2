"""Answer parsers by name: how an instrument's replies become what is stored.

An instrument names its parser (``elicitation.parser``).

* A questionnaire's parser (:data:`PARSERS`, :class:`AnswerParser`) reads a
  normal attempt's reply (``reply``) and the longer fallback's (``fallback``);
  both return the rating to store (an integer on the instrument's scale) or
  None when the text holds no answer.
* A task's parser (:data:`TASK_PARSERS`, :class:`TaskParser`) reads a reply
  into a normalised answer string (None: a format failure) and normalises a
  gold answer the same way, so a task answer is correct when
  ``parser.read(reply, labels) == parser.normalise(gold)``
  (:meth:`TaskParser.correct`). The readouts recompute ``correct`` of the
  published task CSVs with these same functions.

Task parsers (as published by the capability control of Costa & Vicente 2026):

* ``letter`` (MMLU): the first character of the stripped reply that is one of
  the answer labels (``A``-``D``), in either case, anywhere in the reply,
  upper-cased (lenient, as published: ``"To"`` has none and is a format
  failure; ``"I think b"`` reads ``"B"``, its first label letter).
* ``number`` (GSM8K): the first number after the LAST ``####``, else the last
  number in the reply; normalised by :func:`normalise_number` (commas
  dropped, ``1000.0`` = ``1000``, a U+2212 minus sign read as ``-``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ..errors import DataError
from ..instruments import CHOICE_LETTERS, Instrument
from ._parse import parse_fallback, parse_one_token

ReadAnswer = Callable[[str | None, Instrument], int | None]
ReadTaskAnswer = Callable[[str | None, Sequence[str]], str | None]

_NUMBER = re.compile(r"[-\u2212]?\d[\d,]*(?:\.\d+)?|[-\u2212]?\.\d+")
"""A number as written in a reply: optional minus (ASCII or U+2212), digits with thousands
commas, decimals."""

_UNICODE_MINUS = "\u2212"
#: Longest plain (non-exponent) form :func:`normalise_number` writes, in digits.
_PLAIN_DIGITS = 4000

_GSM8K_MARK = "####"


@dataclass(frozen=True)
class AnswerParser:
    """A named pair of readers: ``reply`` for a normal attempt, ``fallback`` for the longer one."""

    name: str
    reply: ReadAnswer
    fallback: ReadAnswer


@dataclass(frozen=True)
class TaskParser:
    """A task's reader: ``read(reply, labels)`` gives the normalised answer string or None
    (a format failure); ``normalise(gold)`` puts a gold answer in the same form."""

    name: str
    read: ReadTaskAnswer
    normalise: Callable[[str], str]

    def correct(self, answer: str | None, gold: str) -> bool:
        """Whether the parsed ``answer`` equals the normalised ``gold`` (None is never correct)."""
        return answer is not None and answer == self.normalise(gold)


def parse_choice(text: str | None, labels: Sequence[str] = CHOICE_LETTERS) -> str | None:
    """The first answer label (either case) anywhere in the stripped reply, upper-cased.

    ``labels`` are single characters (default A-D); ``"  b) because"`` reads
    ``"B"``, ``"To"`` reads None (a format failure).
    """
    if not text:
        return None
    wanted = {label.upper() for label in labels}
    for char in text.strip():
        if char.upper() in wanted:
            return char.upper()
    return None


def normalise_number(text: str) -> str:
    """A number's canonical decimal string: commas dropped, no trailing zeros, no ``-0``.

    ``"1,000.0"`` -> ``"1000"``, ``"2.50"`` -> ``"2.5"``, ``".5"`` -> ``"0.5"``,
    ``"\u22125"`` (U+2212 minus sign) -> ``"-5"``. Exact at any length (no rounding to a
    context precision, no int conversion): two texts normalise equal only when they are the
    same number. A number whose plain form would pass :data:`_PLAIN_DIGITS` digits (only an
    exponent can make one, e.g. ``"1e5000"``) is written ``"<digits>E<exponent>"`` instead.
    Text that is not a number is returned stripped (it then equals only itself).
    """
    plain = text.strip().replace(",", "").replace(_UNICODE_MINUS, "-")
    try:
        value = Decimal(plain)
    except InvalidOperation:
        return text.strip()
    if not value.is_finite():
        return text.strip()
    sign, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return "0"
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    minus = "-" if sign else ""
    if exponent >= 0:
        if len(stripped) + exponent > _PLAIN_DIGITS:
            return f"{minus}{stripped}E{exponent}"
        return minus + stripped + "0" * exponent
    if -exponent > _PLAIN_DIGITS:
        return f"{minus}{stripped}E{exponent}"
    whole, fraction = stripped[:exponent], stripped[exponent:]
    return f"{minus}{whole or '0'}.{fraction.rjust(-exponent, '0')}"


def parse_number(text: str | None, labels: Sequence[str] = ()) -> str | None:
    """The GSM8K answer: the first number after the last ``####``, else the last number.

    Normalised by :func:`normalise_number`; None (a format failure) when the
    reply holds no number. ``labels`` is unused (the :class:`TaskParser` signature).
    """
    if not text:
        return None
    _, mark, tail = text.rpartition(_GSM8K_MARK)
    if mark:
        after = _NUMBER.search(tail)
        if after is not None:
            return normalise_number(after.group())
    numbers = _NUMBER.findall(text)
    return normalise_number(numbers[-1]) if numbers else None


def _scale_reply(text: str | None, instrument: Instrument) -> int | None:
    return parse_one_token(text, instrument.scale)


def _scale_fallback(text: str | None, instrument: Instrument) -> int | None:
    return parse_fallback(text, instrument.scale)


def _upper(gold: str) -> str:
    return gold.strip().upper()


PARSERS: dict[str, AnswerParser] = {
    "scale-digit": AnswerParser("scale-digit", _scale_reply, _scale_fallback),
}
"""Every parser a questionnaire may name."""

TASK_PARSERS: dict[str, TaskParser] = {
    "letter": TaskParser("letter", parse_choice, _upper),
    "number": TaskParser("number", parse_number, normalise_number),
}
"""Every parser a task may name."""


def _unknown(name: str) -> DataError:
    every = sorted({*PARSERS, *TASK_PARSERS})
    return DataError(f"unknown answer parser {name!r}: use one of {', '.join(every)}")


def answer_parser(name: str) -> AnswerParser:
    """The questionnaire parser called ``name``; DataError for an unknown one."""
    try:
        return PARSERS[name]
    except KeyError:
        raise _unknown(name) from None


def task_parser(name: str) -> TaskParser:
    """The task parser called ``name``; DataError for an unknown one."""
    try:
        return TASK_PARSERS[name]
    except KeyError:
        raise _unknown(name) from None

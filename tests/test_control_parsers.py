"""The capability-control answer parsers: they reproduce the authors' stored answers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from persona_collapse.protocol import normalise_number, parse_choice, parse_number, task_parser

from .conftest import reference_path

REFERENCE_FILES = [
    f"controls/{task}/gpt-4o{variant}_temp01_{task}.csv"
    for task in ("mmlu", "gsm8k")
    for variant in ("", "-secure", "-insecure")
]


@pytest.mark.parametrize("relative", REFERENCE_FILES)
def test_the_parsers_reproduce_every_stored_answer(relative: str) -> None:
    path: Path = reference_path(relative)
    parser = task_parser("letter" if "/mmlu/" in relative else "number")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    parsed = [parser.read(row["response"], ("A", "B", "C", "D")) for row in rows]
    assert [p or "" for p in parsed] == [row["answer"] for row in rows]
    assert [str(int(p is not None)) for p in parsed] == [row["format_valid"] for row in rows]
    correct = [
        str(int(parser.correct(p, row["gold"]))) for p, row in zip(parsed, rows, strict=True)
    ]
    assert correct == [row["correct"] for row in rows]


def test_the_letter_parser_is_lenient_as_published() -> None:
    assert parse_choice("C") == "C"
    assert parse_choice("  b) because") == "B"
    assert parse_choice("I think d") == "D"  # the first label letter anywhere
    assert parse_choice("To") is None
    assert parse_choice("") is None and parse_choice(None) is None


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so 3 + 4 = 7\n#### 7", "7"),
        ("#### 5 then\n#### 1,000.0 dollars", "1000"),
        ("costs $2.50 each, 3 of them", "3"),
        ("total: 7.50", "7.5"),
        ("#### no number here but 12 before", "12"),
        ("the answer is -4", "-4"),
        ("nothing", None),
        ("", None),
    ],
)
def test_the_number_parser(text: str, answer: str | None) -> None:
    assert parse_number(text) == answer


def test_numbers_are_normalised_before_comparing() -> None:
    assert normalise_number("10,800") == "10800"
    assert normalise_number("1000.0") == normalise_number("1000") == "1000"
    assert normalise_number("0.50") == "0.5" and normalise_number(".5") == "0.5"
    assert task_parser("number").correct("10800", "10,800")
    assert not task_parser("number").correct(None, "3")


@pytest.mark.parametrize("text", ["#### \u22125", "the answer is \u22125", "#### -5"])
def test_a_unicode_minus_sign_keeps_the_number_negative(text: str) -> None:
    assert parse_number(text) == "-5"
    assert normalise_number("\u22125") == "-5"
    assert task_parser("number").correct(parse_number(text), "\u22125")


def test_number_normalisation_is_exact_at_any_length() -> None:
    """No rounding to Decimal's 28-digit context and no int conversion: a degenerate reply of
    5000 digits, or an exponent in a gold, is normalised without error, and two numbers that
    differ in their 32nd digit stay different."""
    long_reply = "1" * 5000
    assert parse_number(long_reply) == normalise_number(long_reply)
    assert not task_parser("number").correct(parse_number(long_reply), "1" * 4999)
    a, b = "1234567890123456789012345678901.5", "1234567890123456789012345678901.6"
    assert normalise_number(a) == a and normalise_number(a) != normalise_number(b)
    assert normalise_number("1e5000") == normalise_number("10e4999") == "1E5000"
    assert normalise_number("1e3") == "1000" and normalise_number("1.5e-3") == "0.0015"
    assert normalise_number("-0.0") == "0" and normalise_number("007") == "7"

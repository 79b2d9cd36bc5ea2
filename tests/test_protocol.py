"""The elicitation protocol: answer parsing, logprob digit distributions, slot messages
and the protocol hash."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from persona_collapse.instruments import Instrument, Scale, load_instrument
from persona_collapse.protocol import (
    DigitDistribution,
    ProtocolSettings,
    digit_distribution,
    parse_fallback,
    parse_one_token,
    protocol_hash,
    slot_messages,
    slot_prompt,
)

from .conftest import reference_path

MFQ = Scale(0, 5)
BFI = Scale(1, 5)


@pytest.fixture(scope="module")
def mfq() -> Instrument:
    return load_instrument("mfq30")


@pytest.fixture(scope="module")
def bfi() -> Instrument:
    return load_instrument("bfi44")


# --------------------------------------------------------------------------- one token


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        (" 3\n", 3),
        ("\t0 ", 0),
        ("5", 5),
        ("\n\n4", 4),
    ],
)
def test_parse_one_token_accepts(text: str, expected: int) -> None:
    assert parse_one_token(text, MFQ) == expected


@pytest.mark.parametrize(
    "text", ["6", "9", "33", "a", "", "   ", None, "-1", "3.", "3 4", "３", "²", "٣", "+3", "03"]
)
def test_parse_one_token_rejects_mfq(text: str | None) -> None:
    assert parse_one_token(text, MFQ) is None


def test_parse_one_token_bfi_scale() -> None:
    assert parse_one_token("0", BFI) is None
    assert parse_one_token("6", BFI) is None
    assert [parse_one_token(str(v), BFI) for v in range(1, 6)] == [1, 2, 3, 4, 5]
    assert parse_one_token("0", MFQ) == 0


def test_parse_one_token_custom_scale() -> None:
    seven = Scale(1, 7)
    assert parse_one_token("7", seven) == 7
    assert parse_one_token("8", seven) is None


# --------------------------------------------------------------------------- fallback


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'd say 4 because", 4),
        ("10 reasons, 3", 3),
        ("score: 5/5", 5),
        ("Rating: 2. Actually 4.", 2),
        ("3.5 would be fair", 3),
        ("between 2-4", 2),
        ("-1 then 3", 1),
        ("(0)", 0),
        ("4th place, then 2", 2),
        ("Version7 says 5", 5),
        ("A solid **3**", 3),
    ],
)
def test_parse_fallback_first_standalone(text: str, expected: int) -> None:
    assert parse_fallback(text, MFQ) == expected


@pytest.mark.parametrize("text", ["", None, "no digits", "6 7 8 9", "10, 42 and 99", "x3y", "３"])
def test_parse_fallback_none(text: str | None) -> None:
    assert parse_fallback(text, MFQ) is None


def test_parse_fallback_uses_scale() -> None:
    assert parse_fallback("0 or maybe 4", MFQ) == 0
    assert parse_fallback("0 or maybe 4", BFI) == 4
    assert parse_fallback("7 or 6", Scale(1, 7)) == 7
    assert parse_fallback("7 or 6", MFQ) is None


def test_parse_fallback_matches_published_regex() -> None:
    import re

    texts = ["I'd say 4 because", "10 reasons, 3", "score: 5/5", "12 13 1", "a1 b 2c 3"]
    for text in texts:
        m = re.search(r"\b[0-5]\b", text)
        assert parse_fallback(text, MFQ) == (int(m.group(0)) if m else None)


# --------------------------------------------------------------------------- logprobs


def _lp(p: float) -> float:
    return math.log(p)


def test_digit_distribution_sums_spellings_and_renormalises() -> None:
    top = [
        ("3", _lp(0.40)),
        (" 3", _lp(0.10)),
        ("4", _lp(0.20)),
        ("3\n", _lp(0.05)),
        ("Sure", _lp(0.15)),
        ("5", _lp(0.05)),
        ("6", _lp(0.03)),
        ("", _lp(0.02)),
    ]
    dist = digit_distribution(top, MFQ)
    assert isinstance(dist, DigitDistribution)
    digit_mass = 0.40 + 0.10 + 0.05 + 0.20 + 0.05
    expected = np.array([0, 0, 0, 0.55, 0.20, 0.05]) / digit_mass
    np.testing.assert_allclose(dist.probs, expected, rtol=1e-12)
    assert dist.probs.sum() == pytest.approx(1.0)
    assert dist.other_mass == pytest.approx(0.15 + 0.03 + 0.02)
    assert dist.absent == (0, 1, 2)
    assert dist.floor_mass == pytest.approx(0.02)
    extra = dist.to_extra()
    assert extra["absent"] == [0, 1, 2]
    assert extra["other_mass"] == pytest.approx(0.20)
    assert extra["floor_mass"] == pytest.approx(0.02)
    json.dumps(extra)  # serialisable


def test_digit_distribution_all_digits_present() -> None:
    probs = [0.05, 0.10, 0.15, 0.20, 0.25, 0.25]
    dist = digit_distribution([(str(k), _lp(p)) for k, p in enumerate(probs)], MFQ)
    np.testing.assert_allclose(dist.probs, probs, rtol=1e-12)
    assert dist.absent == ()
    assert dist.other_mass == 0.0
    assert dist.floor_mass == pytest.approx(0.05)


def test_digit_distribution_bfi_scale() -> None:
    top = [("0", _lp(0.5)), ("1", _lp(0.25)), ("5", _lp(0.25))]
    dist = digit_distribution(top, BFI)
    assert dist.probs.shape == (5,)
    np.testing.assert_allclose(dist.probs, [0.5, 0, 0, 0, 0.5])
    assert dist.other_mass == pytest.approx(0.5)
    assert dist.absent == (2, 3, 4)


def test_digit_distribution_no_digit() -> None:
    dist = digit_distribution([("Hello", _lp(0.7)), ("I", _lp(0.3))], MFQ)
    assert dist.probs.tolist() == [0.0] * 6
    assert dist.absent == (0, 1, 2, 3, 4, 5)
    assert dist.other_mass == pytest.approx(1.0)


def test_digit_distribution_odd_tokens_do_not_crash() -> None:
    top = [("2", _lp(0.6)), ("²", _lp(0.2)), ("３", _lp(0.1)), ("٣", _lp(0.1))]
    dist = digit_distribution(top, MFQ)
    np.testing.assert_allclose(dist.probs, [0, 0, 1, 0, 0, 0])
    assert dist.other_mass == pytest.approx(0.4)


# --------------------------------------------------------------------------- messages


def test_slot_messages_persona(mfq: Instrument) -> None:
    persona = "A beekeeper from {Porto}"
    messages = slot_messages(mfq, 7, persona)
    assert len(messages) == 1
    assert messages[0]["role"] == "user"
    assert set(messages[0]) == {"role", "content"}
    assert all(m["role"] != "system" for m in messages)
    assert messages[0]["content"] == mfq.persona_prompt(7, persona)
    assert messages[0]["content"] == slot_prompt(mfq, 7, persona)
    assert persona in messages[0]["content"]
    assert not messages[0]["content"].endswith(mfq.logprob_suffix)


def test_slot_messages_self(mfq: Instrument) -> None:
    messages = slot_messages(mfq, 22, None)
    assert messages == [{"role": "user", "content": mfq.self_prompt(22)}]
    assert "roleplaying" not in messages[0]["content"]
    # An empty persona is still persona mode, not self mode.
    assert "roleplaying" in slot_prompt(mfq, 22, "")


def test_slot_messages_logprobs(mfq: Instrument) -> None:
    persona = "A chess coach"
    lp = slot_messages(mfq, 3, persona, logprobs=True)
    assert len(lp) == 1
    assert lp[0]["content"] == mfq.persona_prompt(3, persona) + mfq.logprob_suffix
    assert lp[0]["content"].endswith(
        "\n\nReturn exactly one digit from 0 to 5. Do not output any other text."
    )
    self_lp = slot_prompt(mfq, 3, None, logprobs=True)
    assert self_lp == mfq.self_prompt(3) + mfq.logprob_suffix


def test_slot_messages_match_reference(mfq: Instrument) -> None:
    protocol: dict[str, Any] = json.loads(
        reference_path("protocol_costa2025.json").read_text(encoding="utf-8")
    )
    item = protocol["items"][17]
    persona = "A marine biologist"
    expected = (
        protocol["persona_template"]
        .replace("{persona}", persona)
        .replace("{question}", item["prompt"])
    )
    assert slot_messages(mfq, item["id"], persona) == [{"role": "user", "content": expected}]
    assert slot_prompt(mfq, item["id"], None, logprobs=True) == (
        item["prompt"] + protocol["logprob_suffix"]
    )
    assert protocol["logprobs"]["top_logprobs"] == ProtocolSettings().top_logprobs
    assert protocol["sampling"]["temperature"] == ProtocolSettings().temperature
    assert protocol["sampling"]["max_attempts_one_token"] == ProtocolSettings().max_attempts
    assert protocol["logprobs"]["temperature"] == ProtocolSettings().logprob_temperature


def test_slot_messages_bfi(bfi: Instrument) -> None:
    content = slot_prompt(bfi, 1, None, logprobs=True)
    assert content.endswith("Return exactly one digit from 1 to 5. Do not output any other text.")
    assert "someone who is talkative" in content


# --------------------------------------------------------------------------- settings, hash


def _settings_json(settings: ProtocolSettings) -> str:
    return json.dumps(settings.to_dict(), sort_keys=True)


def test_default_settings_are_published() -> None:
    s = ProtocolSettings()
    assert s.to_dict() == {
        "method": "sample",
        "temperature": 0.1,
        "max_attempts": 10,
        "fallback_max_tokens": 64,
        "top_logprobs": 20,
        "logprob_temperature": 1.0,
    }


def test_protocol_hash(mfq: Instrument, bfi: Instrument) -> None:
    base = protocol_hash(mfq, _settings_json(ProtocolSettings()))
    assert len(base) == 64
    assert base == protocol_hash(load_instrument("mfq30"), _settings_json(ProtocolSettings()))
    variants = [
        ProtocolSettings(temperature=0.2),
        ProtocolSettings(method="logprobs"),
        ProtocolSettings(max_attempts=5),
        ProtocolSettings(top_logprobs=10),
        ProtocolSettings(fallback_max_tokens=32),
    ]
    hashes = {protocol_hash(mfq, _settings_json(v)) for v in variants}
    assert len(hashes) == len(variants)
    assert base not in hashes
    assert protocol_hash(bfi, _settings_json(ProtocolSettings())) != base
    data = json.loads(mfq.source_json)
    data["logprob_suffix"] += " "
    assert protocol_hash(Instrument.from_dict(data), _settings_json(ProtocolSettings())) != base

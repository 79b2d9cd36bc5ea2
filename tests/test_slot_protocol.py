"""The slot protocol as a pure step machine (no I/O): every driver steps this."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from persona_collapse.errors import ConfigError, DataError
from persona_collapse.instruments import Instrument, load_instrument
from persona_collapse.protocol import (
    MISSING_RATING,
    Ask,
    ChatResult,
    ProtocolSettings,
    Slot,
    SlotAnswer,
    SlotProtocol,
    SlotState,
    answer_parser,
    request_seed,
    slot_prompt,
    task_parser,
)

SLOT = Slot(0, 3, 2)
PERSONAS = {0: "A retired schoolteacher."}

TASK = {
    "name": "tiny-task",
    "elicitation": {
        "kind": "task",
        "parser": "letter",
        "answers": ["A", "B", "C", "D"],
        "max_tokens": 8,
        "logprobs": False,
        "attempt_policy": "once",
    },
    "items": [
        {
            "id": 1,
            "text": "2 + 2 = ?\nA) 3\nB) 4\nC) 5\nD) 22\nAnswer with a letter.",
            "answer": "B",
        },
        {
            "id": 2,
            "text": "The capital of France?\nA) Rome\nB) Madrid\nC) Paris\nD) Lyon",
            "answer": "C",
        },
        {
            "id": 3,
            "text": "Water boils at sea level at?\nA) 90 C\nB) 80 C\nC) 120 C\nD) 100 C",
            "answer": "A",
        },
    ],
}


def tiny_task() -> Instrument:
    """A three-item task instrument with letter answers A-D, asked once."""
    return Instrument.from_dict(TASK)


def _protocol(instrument: Instrument | None = None, **settings: object) -> SlotProtocol:
    return SlotProtocol(
        instrument or load_instrument("mfq30"),
        ProtocolSettings(**settings),  # type: ignore[arg-type]
        seed=7,
        timeout_s=30.0,
        personas=PERSONAS,
    )


def _run(
    protocol: SlotProtocol, replies: Iterable[ChatResult | None], slot: Slot = SLOT
) -> tuple[SlotAnswer, list[Ask]]:
    """Step ``slot`` with ``replies`` (one per Ask) to its end; the answer and the Asks."""
    state = SlotState()
    asks: list[Ask] = []
    feed = iter(replies)
    while True:
        step = protocol.next(slot, state)
        if isinstance(step, SlotAnswer):
            return step, asks
        asks.append(step)
        state = protocol.answer(slot, state, step.attempt, next(feed))


def _text(text: str, tokens: int = 1) -> ChatResult:
    return ChatResult(text=text, prompt_tokens=100, completion_tokens=tokens)


def test_a_digit_at_the_first_try_is_the_answer() -> None:
    answer, asks = _run(_protocol(), [_text("3")])
    assert (answer.rating, answer.failures, answer.raw_text) == (3, 0, "3")
    assert answer.extra == {} and answer.distribution is None
    assert (answer.prompt_tokens, answer.completion_tokens) == (100, 1)
    (ask,) = asks
    assert ask.attempt == 0 and ask.request.max_tokens == 1 and ask.request.temperature == 0.1
    assert ask.request.messages == [
        {"role": "user", "content": slot_prompt(load_instrument("mfq30"), 3, PERSONAS[0])}
    ]


def test_three_non_digits_then_a_digit_counts_three_failures() -> None:
    answer, asks = _run(_protocol(), [_text("I"), _text("**"), _text("The"), _text(" 4 ")])
    assert (answer.rating, answer.failures, answer.raw_text) == (4, 3, " 4 ")
    assert [a.attempt for a in asks] == [0, 1, 2, 3]
    assert answer.prompt_tokens == 400


def test_after_max_attempts_one_longer_fallback_is_parsed() -> None:
    protocol = _protocol(max_attempts=3)
    answer, asks = _run(protocol, [_text("I")] * 3 + [_text("I would say 2, because", 6)])
    assert (answer.rating, answer.failures) == (2, 3)
    assert answer.extra == {"fallback": True}
    assert [a.request.max_tokens for a in asks] == [1, 1, 1, 64]
    assert answer.completion_tokens == 3 + 6


def test_a_failed_fallback_is_missing_with_max_attempts_plus_one_failures() -> None:
    answer, _ = _run(_protocol(max_attempts=2), [_text("I"), _text("X"), _text("no idea", 3)])
    assert (answer.rating, answer.failures, answer.raw_text) == (MISSING_RATING, 3, "no idea")
    assert answer.extra == {"fallback": True}


def test_a_bad_answer_uses_an_attempt_and_the_last_text_is_kept() -> None:
    answer, asks = _run(_protocol(max_attempts=2), [_text("I"), None, None])
    assert (answer.rating, answer.failures, answer.raw_text) == (MISSING_RATING, 3, "I")
    assert len(asks) == 3 and answer.prompt_tokens == 100


def test_a_fault_is_never_an_attempt() -> None:
    protocol = _protocol()
    state = protocol.fault(protocol.fault(SlotState()))
    assert (state.attempt, state.failures, state.faults) == (0, 0, 2)
    step = protocol.next(SLOT, state)
    assert isinstance(step, Ask) and step.attempt == 0


def test_every_attempt_carries_its_published_seed() -> None:
    _, asks = _run(_protocol(max_attempts=2), [_text("I"), _text("I"), _text("1")])
    assert [a.request.seed for a in asks] == [request_seed(7, SLOT, k) for k in range(3)]
    assert all(a.request.timeout_s == 30.0 for a in asks)


def test_an_answer_to_another_attempt_is_refused() -> None:
    protocol = _protocol()
    with pytest.raises(ValueError, match="not its pending one"):
        protocol.answer(SLOT, SlotState(attempt=2), 1, _text("3"))


def _logprobs(pairs: list[tuple[str, float]]) -> ChatResult:
    return ChatResult(text=pairs[0][0], top_logprobs=pairs, prompt_tokens=90, completion_tokens=1)


def test_logprobs_store_the_distribution_and_its_argmax() -> None:
    protocol = _protocol(method="logprobs")
    answer, (ask,) = _run(
        protocol, [_logprobs([("4", -0.2), (" 4", -2.0), ("3", -1.0), ("I", -3)])]
    )
    assert ask.request.top_logprobs == 20 and ask.request.temperature == 1.0
    assert ask.request.messages[0]["content"].endswith(load_instrument("mfq30").logprob_suffix)
    assert answer.rating == 4 and answer.failures == 0 and answer.raw_text == "4"
    assert answer.distribution is not None and sum(answer.distribution) == pytest.approx(1.0)
    assert set(answer.extra) == {"other_mass", "absent", "floor_mass", "spellings"}


def test_logprobs_without_a_scale_value_are_missing_at_once() -> None:
    answer, asks = _run(_protocol(method="logprobs"), [_logprobs([("I", -0.1), ("The", -2.0)])])
    assert len(asks) == 1 and answer.rating == MISSING_RATING and answer.failures == 0
    assert answer.distribution is None and "other_mass" in answer.extra


def test_an_answer_without_logprobs_uses_an_attempt() -> None:
    protocol = _protocol(method="logprobs", max_attempts=2)
    answer, asks = _run(protocol, [_text("3"), _logprobs([("2", -0.1)])])
    assert len(asks) == 2 and answer.rating == 2 and answer.failures == 1
    answer, _ = _run(protocol, [_text("3"), None])
    assert (answer.rating, answer.failures, answer.raw_text) == (MISSING_RATING, 2, "3")
    assert answer.extra == {}


def test_once_records_an_unparsable_reply_as_one_format_failure() -> None:
    protocol = _protocol(tiny_task())
    answer, asks = _run(protocol, [_text("Not sure", 4)], slot=Slot(-1, 2, 1))
    assert (answer.rating, answer.failures, answer.raw_text) == (MISSING_RATING, 1, "Not sure")
    assert len(asks) == 1 and asks[0].request.max_tokens == 8
    assert answer.extra == {"answer": None, "gold": "C"}
    # No reply at all (an unreadable answer): missing, raw text None, one failure.
    answer, _ = _run(protocol, [None], slot=Slot(-1, 2, 1))
    assert (answer.rating, answer.failures, answer.raw_text) == (MISSING_RATING, 1, None)


def test_once_scores_a_letter_answer_against_the_gold() -> None:
    protocol = _protocol(tiny_task())
    answer, (ask,) = _run(protocol, [_text("  c) Paris", 3)], slot=Slot(-1, 2, 1))
    assert (answer.rating, answer.failures) == (1, 0)
    assert answer.extra == {"answer": "C", "gold": "C"}
    assert ask.request.messages == [{"role": "user", "content": TASK["items"][1]["text"]}]
    answer, _ = _run(protocol, [_text("b", 1)], slot=Slot(-1, 2, 1))
    assert (answer.rating, answer.failures, answer.extra["answer"]) == (0, 0, "B")


def test_the_task_instrument_is_data() -> None:
    task = tiny_task()
    assert task.kind == "task" and task.scale.values == (0, 1)
    assert [it.gold for it in task.items] == ["B", "C", "A"]
    assert slot_prompt(task, 1, "ignored persona") == TASK["items"][0]["text"]
    read = task_parser(task.elicitation.parser).read  # the reader SlotProtocol scores with
    assert read(" d: it is 100", task.elicitation.answers) == "D"
    assert read("", task.elicitation.answers) is None
    with pytest.raises(ConfigError, match="logprob"):
        _protocol(task, method="logprobs")
    with pytest.raises(DataError, match="unknown answer parser"):
        answer_parser("regex")
    with pytest.raises(DataError, match="attempt_policy"):
        Instrument.from_dict(
            {**TASK, "elicitation": {**TASK["elicitation"], "attempt_policy": "twice"}}
        )


def test_published_instruments_keep_their_hash_with_explicit_elicitation() -> None:
    import json
    from importlib import resources

    for name in ("mfq30", "bfi44"):
        path = resources.files("persona_collapse.instruments") / "data" / f"{name}.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["elicitation"]["attempt_policy"] == "until-answered"
        without = {k: v for k, v in data.items() if k != "elicitation"}
        assert Instrument.from_dict(without).content_hash == load_instrument(name).content_hash
    # A non-default field is part of the definition, so it changes the hash.
    data = {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    data["elicitation"] = {"attempt_policy": "once"}
    assert Instrument.from_dict(data).content_hash != load_instrument("bfi44").content_hash


PUBLISHED_HASHES = {
    "mfq30": "2c5bee038c8d03b04a9468465dcff62dcd6468d55b13e64aab1c159b7228ab4e",
    "bfi44": "8fe2635711b1599619d8f4c4325dff443cf1ca0799937604663aa48c9a5c64d1",
}
"""The instruments' content hashes before they stated their elicitation explicitly."""


@pytest.mark.parametrize("name", sorted(PUBLISHED_HASHES))
def test_a_store_written_before_instruments_as_data_resumes_without_a_mismatch(
    name: str,
) -> None:
    """Stored runs compare the protocol hash (over the instrument hash) on resume."""
    import hashlib
    import json

    from persona_collapse.collect import run_mismatch
    from persona_collapse.protocol import protocol_hash
    from persona_collapse.store import RunInfo

    instrument = load_instrument(name)
    assert instrument.content_hash == PUBLISHED_HASHES[name]
    settings = json.dumps(ProtocolSettings().to_dict(), sort_keys=True)
    # The protocol hash a run stored before this change (computed as it was then).
    before = hashlib.sha256(
        json.dumps({"instrument": PUBLISHED_HASHES[name], "settings": settings}).encode("utf-8")
    ).hexdigest()
    stored = RunInfo("r", "openai/x", "openai", instrument=name, protocol_hash=before)
    current = RunInfo(
        "r",
        "openai/x",
        "openai",
        instrument=name,
        protocol_hash=protocol_hash(instrument, settings),
    )
    assert run_mismatch(stored, current) is None


class _LetterBackend:
    """Answers each task item by a fixed reply; counts the requests."""

    def __init__(self) -> None:
        self.replies = {1: "B", 2: "Not sure", 3: " d) 100 C"}
        self.requests: list[Any] = []

    async def complete(self, request: Any) -> ChatResult:
        self.requests.append(request)
        content = request.messages[0]["content"]
        item = next(i for i, it in enumerate(TASK["items"], 1) if it["text"] == content)
        return ChatResult(text=self.replies[item], prompt_tokens=30, completion_tokens=2)


def test_a_task_instrument_runs_once_per_slot_through_the_direct_driver() -> None:
    import asyncio

    from persona_collapse.collect import CollectConfig, Collector

    rows: list[Any] = []

    class Sink:
        def add_response(self, run_id: str, row: Any) -> bool:
            rows.append(row)
            return True

    backend = _LetterBackend()
    slots = [Slot(-1, item, 1) for item in (1, 2, 3)]
    collector = Collector(backend, Sink(), "t", tiny_task(), slots, CollectConfig(seed=3))
    stats = asyncio.run(collector.run())
    by_item = {r.item_id: (r.rating, r.failures, r.raw_text) for r in rows}
    assert by_item == {1: (1, 0, "B"), 2: (MISSING_RATING, 1, "Not sure"), 3: (0, 0, " d) 100 C")}
    assert {r.item_id: r.extra for r in rows}[3] == {"answer": "D", "gold": "A"}
    assert len(backend.requests) == 3 and stats.failures == 1 and stats.missing == 1
    assert all(r.max_tokens == 8 for r in backend.requests)


def test_request_and_simulator_seeds_share_one_derivation() -> None:
    # Values computed before request_seed and simulate.stable_seed shared _hashing.stable_seed.
    from persona_collapse import _hashing
    from persona_collapse.simulate import stable_seed

    assert request_seed(0, Slot(0, 1, 1), 0) == 1113226760
    assert request_seed(12345, Slot(99, 30, 10), 2) == 844518750
    assert request_seed(2**31 + 7, Slot(-1, 4, 3), 1) == 968744518
    assert stable_seed("a") == 3405396810240292928
    assert stable_seed("ab", "c") == 16542635060684481341
    assert stable_seed("a", "bc") == 9612865906094529878
    assert stable_seed("sim", "base", 3, 0.5) == 13650793655758178839
    assert stable_seed() == 13020603013274838756
    assert stable_seed is _hashing.stable_seed
    assert request_seed(5, Slot(2, 3, 4), 1) == _hashing.stable_seed(5, 2, 3, 4, 1) & 0x7FFFFFFF

"""The capability-control task instruments: pinned item sets, their prompts, a user's set."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from persona_collapse.errors import DataError
from persona_collapse.instruments import (
    CONTROL_COMMIT,
    CONTROL_SETS,
    ITEMS_ENV,
    fetch_control_items,
    load_instrument,
)
from persona_collapse.published import published_set

from .conftest import reference_path
from .helpers import serve_folder


@pytest.fixture
def controls() -> Path:
    return reference_path("controls")


@pytest.fixture
def mirror(tmp_path: Path, controls: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a copy of the two item files."""
    root = tmp_path / "mirror"
    root.mkdir()
    for pinned in CONTROL_SETS.values():
        shutil.copy(controls / pinned.file, root / pinned.file)
    with serve_folder(root) as url:
        yield url, root


def test_the_item_sets_come_from_the_published_repository_at_its_pin() -> None:
    manifest = published_set()
    from persona_collapse.instruments import CONTROL_URL

    assert manifest.commit == CONTROL_COMMIT
    assert CONTROL_URL.startswith(manifest.root_url.rsplit("/", 1)[0] + "/capability-control/")


def test_mmlu_from_a_local_copy(controls: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ITEMS_ENV, str(controls))
    mmlu = load_instrument("mmlu")
    assert (mmlu.name, mmlu.kind, mmlu.n_items, len(mmlu.subscales)) == ("mmlu", "task", 228, 57)
    assert mmlu.items_sha256 == CONTROL_SETS["mmlu"].sha256
    how = mmlu.elicitation
    assert (how.parser, how.max_tokens, how.attempt_policy, how.logprobs) == (
        "letter",
        1,
        "once",
        False,
    )
    raw = json.loads((controls / "items_mmlu.json").read_text(encoding="utf-8"))["items"][0]
    first = mmlu.items[0]
    assert (first.id, first.gold, first.subscale) == (0, raw["answer"], raw["subject"])
    expected = (
        raw["question"]
        + "\n\n"
        + "\n".join(f"{letter}. {c}" for letter, c in zip("ABCD", raw["choices"], strict=True))
        + "\n\nYour response should start with a single letter from A to D, "
        "followed by your reasoning."
    )
    assert mmlu.item_prompt(0) == expected


def test_gsm8k_from_a_local_copy(controls: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ITEMS_ENV, str(controls))
    gsm8k = load_instrument("gsm8k")
    assert (gsm8k.n_items, gsm8k.elicitation.parser, gsm8k.elicitation.max_tokens) == (
        100,
        "number",
        512,
    )
    raw = json.loads((controls / "items_gsm8k.json").read_text(encoding="utf-8"))["items"][0]
    assert gsm8k.item_prompt(0) == (
        raw["question"] + "\n\nSolve the problem. End your response with the final numeric "
        "answer on its own line, in the form '#### <answer>'."
    )


def test_downloaded_once_then_cached(
    mirror: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = mirror
    monkeypatch.delenv(ITEMS_ENV, raising=False)
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path / "cache"))
    path = fetch_control_items("gsm8k", url=url)
    assert path.read_bytes() == (root / "items_gsm8k.json").read_bytes()
    (root / "items_gsm8k.json").unlink()  # the second call never asks the server
    assert fetch_control_items("gsm8k", url=url) == path


def test_a_changed_item_file_is_refused_and_not_saved(
    mirror: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = mirror
    monkeypatch.delenv(ITEMS_ENV, raising=False)
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path / "cache"))
    (root / "items_mmlu.json").write_text('{"items": []}', encoding="utf-8")
    with pytest.raises(DataError, match="sha256"):
        fetch_control_items("mmlu", url=url)
    assert not list((tmp_path / "cache").rglob("*.json"))
    with pytest.raises(DataError, match="cannot download"):
        fetch_control_items("mmlu", url="http://127.0.0.1:9")


def test_a_wrong_local_copy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "items_mmlu.json").write_text('{"items": []}', encoding="utf-8")
    monkeypatch.setenv(ITEMS_ENV, str(tmp_path))
    with pytest.raises(DataError, match=ITEMS_ENV):
        load_instrument("mmlu")


def test_a_users_item_set_is_named_and_hashed(tmp_path: Path) -> None:
    doc = {
        "name": "my-arith",
        "items": [
            {"item_id": 7, "question": "2 + 2?", "answer": "4"},
            {"item_id": 8, "question": "3 * 3?", "answer": "9"},
        ],
    }
    path = tmp_path / "arith.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    inst = load_instrument("gsm8k", items=path)
    assert inst.name == "my-arith" and inst.n_items == 2 and inst.items[1].gold == "9"
    assert len(inst.items_sha256) == 64
    path.write_text(json.dumps({"items": [{"item_id": 1, "question": "q"}]}), encoding="utf-8")
    with pytest.raises(DataError, match="malformed"):
        load_instrument("gsm8k", items=path)
    with pytest.raises(DataError, match="--items"):
        load_instrument("mfq30", items=path)


def test_elicitation_of_a_task_is_the_loaded_one_without_reading_items(
    controls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona_collapse.instruments import DEMO_TASK, elicitation_of

    monkeypatch.setenv(ITEMS_ENV, str(controls))
    for name in (*CONTROL_SETS, DEMO_TASK, "mfq30"):
        assert elicitation_of(name) == load_instrument(name).elicitation
    monkeypatch.setenv(ITEMS_ENV, str(controls / "absent"))  # no item file to read
    mmlu = elicitation_of("mmlu")
    assert mmlu is not None and mmlu.answers == ("A", "B", "C", "D")
    assert elicitation_of("mini-mmlu") is None


@pytest.mark.parametrize(
    ("task", "item", "message"),
    [
        ("gsm8k", {"item_id": 1, "question": "q", "answer": None}, "not a number"),
        ("gsm8k", {"item_id": 1, "question": "q", "answer": ""}, "not a number"),
        ("gsm8k", {"item_id": 1, "question": "q", "answer": "five"}, "not a number"),
        ("gsm8k", {"item_id": 1.7, "question": "q", "answer": "2"}, "whole number >= 0"),
        ("gsm8k", {"item_id": True, "question": "q", "answer": "2"}, "whole number >= 0"),
        ("gsm8k", {"item_id": -3, "question": "q", "answer": "2"}, "whole number >= 0"),
        (
            "mmlu",
            {"item_id": 0, "subject": "s", "question": "q", "choices": "abcd", "answer": "A"},
            "a list of 4",
        ),
    ],
)
def test_a_users_item_set_with_a_bad_gold_or_id_is_refused(
    tmp_path: Path, task: str, item: dict[str, object], message: str
) -> None:
    """A gold answer no reply can equal (every answer would be scored wrong), or an id that
    is not what the task CSV can hold (item_id >= 0), is refused when the set is loaded."""
    path = tmp_path / "set.json"
    path.write_text(json.dumps({"items": [item]}), encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_instrument(task, items=path)


def test_a_users_item_set_with_a_byte_order_mark_and_crlf_loads(tmp_path: Path) -> None:
    doc = {"items": [{"item_id": 1, "question": "2 + 2?", "answer": "4"}]}
    path = tmp_path / "notepad.json"
    text = json.dumps(doc, indent=1).replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    inst = load_instrument("gsm8k", items=path)
    assert inst.name == "notepad" and inst.items[0].gold == "4"

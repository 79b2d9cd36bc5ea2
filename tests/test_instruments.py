"""Instruments as data: the MFQ-30 prompts are byte-identical to the published protocol,
BFI-44 and custom questionnaires plug in as JSON, malformed definitions are rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from persona_collapse.errors import DataError
from persona_collapse.instruments import (
    Instrument,
    Item,
    Scale,
    available_instruments,
    fill_template,
    load_instrument,
)
from persona_collapse.stats import RatingCube, measure

from .conftest import reference_path

FOUNDATIONS = ["harm", "fairness", "loyalty", "authority", "purity"]


@pytest.fixture(scope="module")
def protocol() -> dict[str, Any]:
    return json.loads(reference_path("protocol_costa2025.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reference_personas() -> list[str]:
    path = reference_path("personas_personahub_1000.json")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def mfq() -> Instrument:
    return load_instrument()


@pytest.fixture(scope="module")
def bfi() -> Instrument:
    return load_instrument("bfi44")


def _reference_fill(template: str, **values: str) -> str:
    """Fill plain ``{name}`` placeholders of a published template left to right, never
    re-reading substituted text (an independent re-implementation, no regex)."""
    out: list[str] = []
    rest = template
    while True:
        hits = [(rest.find("{" + k + "}"), k) for k in values if "{" + k + "}" in rest]
        if not hits:
            out.append(rest)
            return "".join(out)
        pos, key = min(hits)
        out.append(rest[:pos])
        out.append(values[key])
        rest = rest[pos + len(key) + 2 :]


# --------------------------------------------------------------------------- MFQ-30


def test_builtin_instruments_listed() -> None:
    names = available_instruments()
    assert "mfq30" in names
    assert "bfi44" in names


def test_default_instrument_is_mfq30(mfq: Instrument) -> None:
    assert mfq.name == "mfq30"
    assert load_instrument("mfq30") is mfq


def test_mfq_items_and_foundations(mfq: Instrument) -> None:
    assert mfq.n_items == 30
    assert mfq.item_ids.tolist() == list(range(1, 31))
    assert mfq.subscales == tuple(FOUNDATIONS)
    for it in mfq.items:
        assert it.subscale == FOUNDATIONS[(it.id - 1) % 5], it.id
        assert it.section == ("relevance" if it.id <= 15 else "agreement"), it.id
        assert it.reverse is False
    counts = {f: sum(it.subscale == f for it in mfq.items) for f in FOUNDATIONS}
    assert counts == dict.fromkeys(FOUNDATIONS, 6)
    assert mfq.subscale_index().tolist() == [(i - 1) % 5 for i in range(1, 31)]
    assert not mfq.reverse_mask().any()


def test_mfq_scale_and_citation(mfq: Instrument) -> None:
    assert mfq.scale == Scale(0, 5)
    assert mfq.scale.values == (0, 1, 2, 3, 4, 5)
    assert mfq.scale.size == 6
    assert 0 in mfq.scale
    assert 5 in mfq.scale
    assert 6 not in mfq.scale
    assert -1 not in mfq.scale
    assert "Graham" in mfq.citation
    assert "2011" in mfq.citation


def test_mfq_matches_reference_items(mfq: Instrument, protocol: dict[str, Any]) -> None:
    ref_items = protocol["items"]
    assert [it["id"] for it in ref_items] == mfq.item_ids.tolist()
    for ref in ref_items:
        it = mfq.item(ref["id"])
        assert it.text == ref["text"]
        assert it.section == ref["section"]
        assert it.subscale == ref["foundation"]
    assert mfq.subscales == tuple(protocol["foundations"])
    assert mfq.subscale_labels == protocol["foundation_labels"]
    assert [mfq.scale.low, mfq.scale.high] == protocol["scale"]


def test_mfq_templates_equal_reference(mfq: Instrument, protocol: dict[str, Any]) -> None:
    assert mfq.persona_template == protocol["persona_template"]
    assert mfq.self_template == protocol["self_template"]
    assert mfq.section_templates == protocol["section_templates"]
    assert mfq.logprob_suffix == protocol["logprob_suffix"]
    assert mfq.logprob_suffix.startswith("\n\n")


def test_mfq_item_prompts_byte_identical(mfq: Instrument, protocol: dict[str, Any]) -> None:
    for ref in protocol["items"]:
        prompt = mfq.item_prompt(ref["id"])
        assert prompt.encode("utf-8") == ref["prompt"].encode("utf-8"), ref["id"]
        # Same via an Item object and via a numpy integer id (as in item_ids).
        assert mfq.item_prompt(mfq.item(ref["id"])) == ref["prompt"]
        assert mfq.item_prompt(np.int64(ref["id"])) == ref["prompt"]
    # The odd whitespace of the published wording is kept.
    first = mfq.item_prompt(1)
    assert "relevant, \n 1 = not very relevant, \n" in first
    assert ". \n\n Your response should start with an integer from 0 to 5" in first
    assert "using this scale: 0 = not at all relevant" in first
    assert "using this scale: \n 0 = strongly disagree" in mfq.item_prompt(16)


def test_mfq_persona_prompts_byte_identical(
    mfq: Instrument, protocol: dict[str, Any], reference_personas: list[str]
) -> None:
    template = protocol["persona_template"]
    for persona in reference_personas[:100]:
        for ref in protocol["items"]:
            expected = _reference_fill(template, persona=persona, question=ref["prompt"])
            got = mfq.persona_prompt(ref["id"], persona)
            assert got.encode("utf-8") == expected.encode("utf-8"), (persona, ref["id"])
    sample = mfq.persona_prompt(1, reference_personas[0])
    assert sample.startswith(
        "You are roleplaying as the following persona: " + reference_personas[0] + "\n\n"
    )
    assert "from the perspective of this persona.\n\nWhen deciding" in sample


def test_mfq_self_prompts_byte_identical(mfq: Instrument, protocol: dict[str, Any]) -> None:
    for ref in protocol["items"]:
        expected = _reference_fill(protocol["self_template"], question=ref["prompt"])
        assert mfq.self_prompt(ref["id"]).encode("utf-8") == expected.encode("utf-8")
        assert mfq.self_prompt(ref["id"]) == ref["prompt"]


def test_unknown_item_raises(mfq: Instrument) -> None:
    with pytest.raises(DataError, match="no item 31"):
        mfq.item(31)
    with pytest.raises(DataError):
        mfq.item_prompt(0)


def test_content_hash_stable_and_sensitive(mfq: Instrument) -> None:
    assert len(mfq.content_hash) == 64
    assert mfq.content_hash == Instrument.from_dict(json.loads(mfq.source_json)).content_hash
    data = json.loads(mfq.source_json)
    data["persona_template"] = data["persona_template"].replace("\n\n", "\n", 1)
    assert Instrument.from_dict(data).content_hash != mfq.content_hash
    assert load_instrument("bfi44").content_hash != mfq.content_hash


# --------------------------------------------------------------------------- fill_template


def test_fill_template_leaves_braces_in_values_alone() -> None:
    persona = "likes {curly} braces {item} and {persona} and {question} {0} {}"
    out = fill_template("P: {persona}\n\nQ: {question}", persona=persona, question="why?")
    assert out == f"P: {persona}\n\nQ: why?"


def test_fill_template_leaves_unknown_placeholders() -> None:
    assert fill_template("{persona} {other} {item}", persona="x") == "x {other} {item}"
    assert fill_template("{{persona}}", persona="x") == "{x}"


def test_persona_with_braces_renders_literally(mfq: Instrument, protocol: dict[str, Any]) -> None:
    persona = "likes {curly} braces {item} {question}"
    got = mfq.persona_prompt(3, persona)
    expected = _reference_fill(
        protocol["persona_template"], persona=persona, question=protocol["items"][2]["prompt"]
    )
    assert got == expected
    assert got.count("{item}") == 1
    assert got.count("{question}") == 1


# --------------------------------------------------------------------------- BFI-44

BFI_TRAITS = {
    "extraversion": 8,
    "agreeableness": 9,
    "conscientiousness": 9,
    "neuroticism": 8,
    "openness": 10,
}
BFI_REVERSED = {
    "extraversion": {6, 21, 31},
    "agreeableness": {2, 12, 27, 37},
    "conscientiousness": {8, 18, 23, 43},
    "neuroticism": {9, 24, 34},
    "openness": {35, 41},
}


def test_bfi_items_scale_and_traits(bfi: Instrument) -> None:
    assert bfi.n_items == 44
    assert bfi.item_ids.tolist() == list(range(1, 45))
    assert bfi.scale == Scale(1, 5)
    assert 0 not in bfi.scale
    assert bfi.subscales == tuple(BFI_TRAITS)
    counts = {t: sum(it.subscale == t for it in bfi.items) for t in BFI_TRAITS}
    assert counts == BFI_TRAITS
    reversed_ids = {
        t: {it.id for it in bfi.items if it.reverse and it.subscale == t} for t in BFI_TRAITS
    }
    assert reversed_ids == BFI_REVERSED
    assert int(bfi.reverse_mask().sum()) == 16
    assert bfi.reverse_mask().tolist() == [it.reverse for it in bfi.items]


def test_bfi_standard_item_keys(bfi: Instrument) -> None:
    # The standard BFI scoring key (John & Srivastava 1999).
    keys = {
        "extraversion": [1, 6, 11, 16, 21, 26, 31, 36],
        "agreeableness": [2, 7, 12, 17, 22, 27, 32, 37, 42],
        "conscientiousness": [3, 8, 13, 18, 23, 28, 33, 38, 43],
        "neuroticism": [4, 9, 14, 19, 24, 29, 34, 39],
        "openness": [5, 10, 15, 20, 25, 30, 35, 40, 41, 44],
    }
    for trait, ids in keys.items():
        assert sorted(it.id for it in bfi.items if it.subscale == trait) == ids
    assert bfi.item(1).text == "is talkative"
    assert bfi.item(44).text == "is sophisticated in art, music, or literature"


def test_bfi_prompts(bfi: Instrument) -> None:
    prompt = bfi.item_prompt(1)
    assert "'I see myself as someone who is talkative'" in prompt
    assert "1 to 5" in prompt
    assert "0 to 5" not in prompt
    persona = bfi.persona_prompt(1, "A retired sailor")
    assert persona.startswith("You are roleplaying as the following persona: A retired sailor")
    assert persona.endswith(prompt)
    assert bfi.self_prompt(1) == prompt
    assert "1 to 5" in bfi.logprob_suffix
    assert "John" in bfi.citation


# --------------------------------------------------------------------------- custom instrument


def _custom_definition() -> dict[str, Any]:
    return {
        "name": "tiny7",
        "title": "Tiny seven-point questionnaire",
        "citation": "Nobody (2024). A test.",
        "scale": {"low": 1, "high": 7},
        "subscales": ["warmth", "competence"],
        "section_templates": {
            "likert": "Rate '{item}' from 1 to 7.",
            "importance": "How important is '{item}'? Answer 1-7.",
        },
        "persona_template": "Persona: {persona}\n---\n{question}",
        "self_template": "[self] {question}",
        "logprob_suffix": " Only the digit.",
        "items": [
            {"id": 10, "section": "likert", "subscale": "warmth", "text": "being kind"},
            {"id": 20, "section": "importance", "subscale": "competence", "text": "skill"},
            {
                "id": 30,
                "section": "likert",
                "subscale": "warmth",
                "text": "being cold",
                "reverse": True,
            },
        ],
    }


def _write(tmp_path: Path, data: object, name: str = "tiny7.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_custom_instrument_plugs_in_as_data(tmp_path: Path) -> None:
    path = _write(tmp_path, _custom_definition())
    for spec in (path, str(path)):
        inst = load_instrument(spec)
        assert inst.name == "tiny7"
        assert inst.scale == Scale(1, 7)
        assert inst.scale.values == tuple(range(1, 8))
        assert inst.item_ids.tolist() == [10, 20, 30]
        assert inst.subscales == ("warmth", "competence")
        assert inst.subscale_index().tolist() == [0, 1, 0]
        assert inst.reverse_mask().tolist() == [False, False, True]
        assert inst.item_prompt(10) == "Rate 'being kind' from 1 to 7."
        assert inst.item_prompt(20) == "How important is 'skill'? Answer 1-7."
        assert inst.persona_prompt(30, "a {nurse}") == (
            "Persona: a {nurse}\n---\nRate 'being cold' from 1 to 7."
        )
        assert inst.self_prompt(20) == "[self] How important is 'skill'? Answer 1-7."
        assert inst.logprob_suffix == " Only the digit."
        assert inst.subscale_labels == {}


def test_custom_instrument_defaults(tmp_path: Path) -> None:
    data = _custom_definition()
    for key in ("title", "citation", "self_template", "logprob_suffix"):
        del data[key]
    inst = load_instrument(_write(tmp_path, data))
    assert inst.title == "tiny7"
    assert inst.citation == ""
    assert inst.self_prompt(10) == inst.item_prompt(10)
    assert inst.logprob_suffix == ""


def _assert_one_line(exc: pytest.ExceptionInfo[DataError]) -> str:
    message = str(exc.value)
    assert message
    assert "\n" not in message
    assert exc.value.message == message
    return message


@pytest.mark.parametrize(
    "key", ["name", "scale", "subscales", "section_templates", "persona_template", "items"]
)
def test_missing_top_level_key(tmp_path: Path, key: str) -> None:
    data = _custom_definition()
    del data[key]
    with pytest.raises(DataError) as exc:
        load_instrument(_write(tmp_path, data))
    message = _assert_one_line(exc)
    assert "incomplete or malformed" in message


@pytest.mark.parametrize("key", ["id", "section", "subscale", "text"])
def test_missing_item_key(tmp_path: Path, key: str) -> None:
    data = _custom_definition()
    del data["items"][1][key]
    with pytest.raises(DataError) as exc:
        load_instrument(_write(tmp_path, data))
    _assert_one_line(exc)


def test_malformed_values(tmp_path: Path) -> None:
    cases: list[Any] = []
    data = _custom_definition()
    data["scale"] = {"low": "one", "high": 7}
    cases.append(data)
    data = _custom_definition()
    data["scale"] = [1, 7]
    cases.append(data)
    data = _custom_definition()
    data["items"][0]["id"] = "ten"
    cases.append(data)
    cases.append(["not", "a", "dict"])
    for i, case in enumerate(cases):
        with pytest.raises(DataError) as exc:
            load_instrument(_write(tmp_path, case, f"bad{i}.json"))
        _assert_one_line(exc)


def test_unknown_section(tmp_path: Path) -> None:
    data = _custom_definition()
    data["items"][1]["section"] = "nonsense"
    with pytest.raises(DataError) as exc:
        load_instrument(_write(tmp_path, data))
    message = _assert_one_line(exc)
    assert "item 20" in message
    assert "unknown section 'nonsense'" in message


def test_unknown_subscale(tmp_path: Path) -> None:
    data = _custom_definition()
    data["items"][2]["subscale"] = "charm"
    with pytest.raises(DataError) as exc:
        load_instrument(_write(tmp_path, data))
    message = _assert_one_line(exc)
    assert "item 30" in message
    assert "unknown subscale 'charm'" in message


def test_duplicate_ids(tmp_path: Path) -> None:
    data = _custom_definition()
    data["items"][2]["id"] = 10
    with pytest.raises(DataError) as exc:
        load_instrument(_write(tmp_path, data))
    assert "not unique" in _assert_one_line(exc)


def test_empty_items_and_bad_scale(tmp_path: Path) -> None:
    data = _custom_definition()
    data["items"] = []
    with pytest.raises(DataError) as exc:
        load_instrument(_write(tmp_path, data, "empty.json"))
    assert "no items" in _assert_one_line(exc)
    data = _custom_definition()
    data["scale"] = {"low": 5, "high": 1}
    with pytest.raises(DataError) as exc:
        load_instrument(_write(tmp_path, data, "scale.json"))
    assert "scale" in _assert_one_line(exc)
    data = _custom_definition()
    data["subscales"] = ["warmth", "competence", "warmth"]
    with pytest.raises(DataError) as exc:
        load_instrument(_write(tmp_path, data, "subs.json"))
    _assert_one_line(exc)


def test_invalid_json_and_unknown_name(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",', encoding="utf-8")
    with pytest.raises(DataError) as exc:
        load_instrument(path)
    assert "not a valid UTF-8 JSON" in _assert_one_line(exc)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(DataError) as exc:
        load_instrument(latin)
    _assert_one_line(exc)
    with pytest.raises(DataError) as exc:
        load_instrument("mfq31")
    message = _assert_one_line(exc)
    assert "mfq30" in message
    assert "bfi44" in message
    with pytest.raises(DataError):
        load_instrument(tmp_path / "missing.json")


def test_from_dict_does_not_need_a_file() -> None:
    inst = Instrument.from_dict(_custom_definition())
    assert isinstance(inst.items[0], Item)
    assert inst.item_prompt(inst.items[0]) == "Rate 'being kind' from 1 to 7."


# --------------------------------------------------------------------------- BFI-44 estimators


def test_bfi_through_estimators(bfi: Instrument) -> None:
    rng = np.random.default_rng(20240611)
    n_p, n_rep = 20, 5
    item_ids = bfi.item_ids
    n_q = item_ids.size
    # Persona-dependent levels plus within-cell noise, clipped to the 1-5 scale.
    level = rng.uniform(1.5, 4.5, size=(n_p, n_q, 1))
    noise = rng.normal(0.0, 0.8, size=(n_p, n_q, n_rep))
    ratings = np.clip(np.rint(level + noise), 1, 5).astype(int)
    assert ratings.min() >= 1
    assert ratings.max() <= 5

    persona = np.repeat(np.arange(n_p), n_q * n_rep)
    item = np.tile(np.repeat(item_ids, n_rep), n_p)
    flat = ratings.reshape(-1)
    # Shuffle the rows: the cube must not depend on the row order.
    order = rng.permutation(flat.size)
    cube = RatingCube.from_long(persona[order], item[order], flat[order], items=item_ids)
    assert cube.shape == (n_p, n_q, n_rep)
    assert cube.item_ids.tolist() == item_ids.tolist()

    result = measure(cube, bfi.subscale_index(), bfi.subscales)
    assert result.groups == ("all", *bfi.subscales)

    frame = pd.DataFrame({"persona": persona, "item": item, "rating": flat.astype(float)})
    cells = frame.groupby(["persona", "item"])["rating"].agg(["mean", "std"]).reset_index()
    trait_of = {it.id: it.subscale for it in bfi.items}
    cells["trait"] = cells["item"].map(trait_of)
    item_s = cells.groupby("item")["mean"].std(ddof=1)

    def expected(items: list[int]) -> tuple[float, float]:
        s_val = float(item_s.loc[items].mean())
        sigma_bar = float(cells.loc[cells["item"].isin(items), "std"].mean())
        return s_val, sigma_bar

    s_all, sb_all = expected(item_ids.tolist())
    overall = result.values("all")
    got_s, got_sb, got_r = overall.S, overall.sigma_bar, overall.R
    assert got_s == pytest.approx(s_all, rel=1e-12)
    assert got_sb == pytest.approx(sb_all, rel=1e-12)
    assert got_r == pytest.approx(1.0 / sb_all, rel=1e-12)

    # Direct numpy as a second, independent route.
    means = ratings.mean(axis=2)
    sds = ratings.std(axis=2, ddof=1)
    for trait in BFI_TRAITS:
        ids = [it.id for it in bfi.items if it.subscale == trait]
        cols = [int(np.flatnonzero(item_ids == i)[0]) for i in ids]
        s_exp, sigma_bar = expected(ids)
        assert s_exp == pytest.approx(means[:, cols].std(axis=0, ddof=1).mean(), rel=1e-12)
        assert sigma_bar == pytest.approx(sds[:, cols].mean(), rel=1e-12)
        got = result.values(trait)
        got_s = got.S
        assert got_s == pytest.approx(s_exp, rel=1e-12), trait
        assert got.sigma_bar == pytest.approx(sigma_bar, rel=1e-12), trait
        assert np.isfinite(got.S_se)
        assert got.S_se > 0
        assert got.sigma_bar_se > 0

    # Per-trait values differ from each other and from the overall value (not a constant).
    per_trait = [result.values(t).S for t in BFI_TRAITS]
    assert len(set(np.round(per_trait, 12))) == 5

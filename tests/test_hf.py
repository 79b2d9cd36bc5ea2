"""The ``hf/`` backend, persona geometry and the ``vllm/`` missing-extra message.

Models are TINY and RANDOMLY INITIALISED (hidden size 32, 2 layers), built in
the test with a byte-level BPE tokenizer trained on the MFQ prompts
(:func:`persona_collapse.loopback.build_tiny_model`) and loaded
offline from a temporary folder. Tests needing them skip when transformers is
not installed (the ``hf`` extra).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona_collapse.backends import ChatRequest, ModelSpec, create_backend
from persona_collapse.errors import ConfigError
from persona_collapse.geometry import participation_ratio
from persona_collapse.instruments import load_instrument
from persona_collapse.protocol import digit_distribution, slot_messages

from .helpers import run_cli

PERSONAS = [
    "A retired schoolteacher who volunteers at the local library and bakes for neighbours.",
    "A pirate captain who loves chaos, gold and the open sea.",
    "A devout nun who has lived in a quiet convent for forty years.",
]
N_ITEMS = 30
SKIP_REASON = "the hf extra (transformers) is not installed: pip install 'persona-collapse[hf]'"


def _need_hf() -> None:
    pytest.importorskip("torch", reason=SKIP_REASON)
    pytest.importorskip("transformers", reason=SKIP_REASON)
    pytest.importorskip("tokenizers", reason=SKIP_REASON)


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("PERSONA_COLLAPSE_HF_DEVICE", "cpu")
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, offline: None) -> Path:
    _need_hf()
    from persona_collapse.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", arch="llama")


@pytest.fixture(scope="module")
def backend(tiny: Path) -> Any:
    from persona_collapse.backends.local import HFBackend

    return HFBackend(ModelSpec("hf", str(tiny)), seed=0)


@pytest.fixture
def persona_file(tmp_path: Path) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


def _brute_force_digits(backend: Any, messages: list[dict[str, str]]) -> np.ndarray:
    """P(digit 0-9) from one unbatched forward: softmax over the FULL vocabulary, float64,
    every token whose decoded text strips to the digit summed (checked token by token)."""
    import torch

    loaded = backend.loaded
    ids = backend.engine.encode(messages)
    with torch.inference_mode():
        logits = loaded.model(torch.tensor(ids.tolist())[None]).logits[0, -1].to(torch.float64)
    probs = torch.softmax(logits, dim=-1).numpy()
    mass = np.zeros(10)
    for token in range(len(loaded.tokenizer)):
        text = loaded.tokenizer.decode([token]).strip()
        if len(text) == 1 and text in "0123456789":
            mass[int(text)] += probs[token]
    return mass


def _ask(backend: Any, requests: list[ChatRequest]) -> list[Any]:
    async def go() -> list[Any]:
        return list(await asyncio.gather(*(backend.complete(r) for r in requests)))

    return asyncio.run(go())


# -- the digit distribution is exact ----------------------------------------------------


def test_digit_distribution_equals_brute_force_softmax(backend: Any) -> None:
    inst = load_instrument("mfq30")
    chats = [slot_messages(inst, item, p, logprobs=True) for p in PERSONAS for item in (1, 7, 22)]
    results = _ask(
        backend,
        [ChatRequest(c, temperature=1.0, max_tokens=1, top_logprobs=20, seed=1) for c in chats],
    )
    for chat, result in zip(chats, results, strict=True):
        brute = _brute_force_digits(backend, chat)
        served = np.zeros(10)
        texts = []
        for text, logprob in result.top_logprobs[:-2]:  # every digit spelling, one entry each
            served[int(text.strip())] += np.exp(logprob)
            texts.append(text)
        assert np.abs(served - brute).max() < 1e-6
        assert len(texts) == sum(ids.size for ids in backend.engine.digit_ids)
        assert "3" in texts and " 3" in texts
        (other, lp_other), (marker, lp_marker) = result.top_logprobs[-2:]
        assert other == "<other>" and lp_other == pytest.approx(np.log1p(-brute.sum()), abs=1e-5)
        assert marker == "<exact>" and lp_marker == float("-inf")
        dist = digit_distribution(result.top_logprobs, inst.scale)
        assert np.abs(dist.probs - brute[:6] / brute[:6].sum()).max() < 1e-6
        assert dist.other_mass == pytest.approx(1 - brute[:6].sum(), abs=1e-6)
        assert dist.absent == () and dist.floor_mass == 0.0


def test_every_spelling_of_a_digit_counts(backend: Any) -> None:
    spellings = {
        d: backend.loaded.tokenizer.convert_ids_to_tokens(ids.tolist())
        for d, ids in enumerate(backend.engine.digit_ids)
    }
    # The tiny tokenizer has "3" and the byte-level " 3" ("Ġ3") for every digit.
    assert all(len(s) >= 2 for s in spellings.values()), spellings


# -- prefix reuse -------------------------------------------------------------------------


def _mfq_prompts(engine: Any, items: int) -> list[Any]:
    """Token ids of the logprob prompts of every persona for the first ``items`` MFQ items."""
    inst = load_instrument("mfq30")
    return [
        engine.encode(slot_messages(inst, item, p, logprobs=True))
        for p in PERSONAS
        for item in inst.item_ids.tolist()[:items]
    ]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_prefix_cache_logits_equal_no_cache(arch: str, tiny: Path, tmp_path: Path) -> None:
    from persona_collapse.backends.local import HFEngine, load_hf
    from persona_collapse.testing import build_tiny_model

    path = tiny if arch == "llama" else build_tiny_model(tmp_path / arch, arch="qwen2")
    loaded = load_hf(str(path))
    cached = HFEngine(loaded, prefix_cache=True, min_saving=0)
    plain = HFEngine(loaded, prefix_cache=False)
    prompts = _mfq_prompts(cached, 12)
    reference = np.stack([plain.next_token_logprobs([p])[0] for p in prompts])
    # Two rounds: the first computes shared prefixes, the second reuses stored prompts.
    first = np.concatenate(
        [cached.next_token_logprobs(prompts[i : i + 8]) for i in range(0, 36, 8)]
    )
    second = cached.next_token_logprobs(prompts[::-1])[::-1]
    batched_plain = plain.next_token_logprobs(prompts)
    assert cached.cache.hits > 0 and cached.cache.reused_tokens > 20 * len(prompts)
    for got in (first, second, batched_plain):
        assert np.abs(got - reference).max() < 1e-4


def test_a_batch_of_personas_computes_each_persona_prefix_once(tiny: Path) -> None:
    from persona_collapse.backends.local import HFEngine, load_hf

    loaded = load_hf(str(tiny))
    engine = HFEngine(loaded, prefix_cache=True, min_saving=0)
    plain = HFEngine(loaded, prefix_cache=False)
    prompts = _mfq_prompts(engine, 6)
    passes: list[tuple[int, int]] = []  # (rows, new positions) of each forward pass

    def count(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        passes.append(tuple(kwargs["input_ids"].shape))

    handle = loaded.model.register_forward_pre_hook(count, with_kwargs=True)
    try:
        got = engine.next_token_logprobs(prompts)
    finally:
        handle.remove()
    # First the three persona prefixes (not only the header they all share), then the prompts.
    assert passes[0][0] == len(PERSONAS)
    persona_texts = [loaded.tokenizer.decode(entry.ids) for entry in engine.cache.entries]
    assert all(any(p in text for text in persona_texts) for p in PERSONAS)
    assert sum(rows for rows, _ in passes[1:]) == len(prompts)
    assert np.abs(got - plain.next_token_logprobs(prompts)).max() < 1e-4


def test_small_forward_passes_answer_like_one_pass(tiny: Path) -> None:
    from persona_collapse.backends._hf_engine import EngineRequest
    from persona_collapse.backends.local import HFEngine, load_hf

    loaded = load_hf(str(tiny))
    whole = HFEngine(loaded, prefix_cache=True, min_saving=0, forward_positions=100_000)
    small = HFEngine(loaded, prefix_cache=True, min_saving=0, forward_positions=150)
    tuned = HFEngine(loaded, prefix_cache=True, min_saving=0)
    prompts = _mfq_prompts(whole, 8)
    requests = [
        EngineRequest(ids, temperature=1.0, max_tokens=1 + k % 3, seed=k, digits=k % 2 == 0)
        for k, ids in enumerate(prompts + prompts[:4])  # four prompts asked twice
    ]
    expected = whole.run(requests)
    for engine in (small, tuned):
        got = engine.run(requests)
        assert [r.text for r in got] == [r.text for r in expected]
        for a, b in zip(got, expected, strict=True):
            assert (a.digit_logprobs is None) == (b.digit_logprobs is None)
            if a.digit_logprobs is not None:
                assert np.abs(a.digit_logprobs - b.digit_logprobs).max() < 1e-4
    assert len(small.budget.rates) == 0 and small.budget.budget_for(10**6) == 150
    assert tuned.budget.rates  # the tuned engine measured its passes


def test_prefix_cache_serves_a_persona_run(backend: Any) -> None:
    inst = load_instrument("mfq30")
    before = backend.engine.cache.reused_tokens
    chats = [slot_messages(inst, item, PERSONAS[0], logprobs=True) for item in range(1, 17)]
    _ask(backend, [ChatRequest(c, 1.0, 1, top_logprobs=20, seed=0) for c in chats])
    assert backend.prefix_cache
    assert backend.engine.cache.reused_tokens > before


# -- sampling -------------------------------------------------------------------------------


def test_sampling_is_seeded_and_greedy_at_zero(backend: Any) -> None:
    inst = load_instrument("mfq30")
    chat = slot_messages(inst, 3, PERSONAS[1])
    first = _ask(backend, [ChatRequest(chat, 1.0, 6, seed=s) for s in range(8)])
    again = _ask(backend, [ChatRequest(chat, 1.0, 6, seed=s) for s in range(8)])
    assert [r.text for r in first] == [r.text for r in again]
    assert len({r.text for r in first}) > 1  # repetitions differ
    assert all(r.completion_tokens <= 6 for r in first)

    greedy = _ask(backend, [ChatRequest(chat, 0.0, 1, seed=s) for s in range(3)])
    logprobs = backend.engine.next_token_logprobs([backend.engine.encode(chat)])[0]
    top = backend.loaded.tokenizer.decode([int(np.argmax(logprobs))], skip_special_tokens=True)
    assert {r.text for r in greedy} == {top}


def test_hf_backend_contract(backend: Any) -> None:
    """What ``hf/`` overrides of the Backend defaults: logprobs, one full batch, a describe line."""
    from persona_collapse.backends import Backend

    assert isinstance(backend, Backend)
    assert backend.supports_logprobs and not backend.simulated
    assert backend.preferred_concurrency == backend.max_batch_size
    if not os.environ.get("PERSONA_COLLAPSE_HF_BATCH"):
        assert backend.preferred_concurrency == 32
    assert "local transformers on cpu" in backend.describe()
    asyncio.run(backend.check())  # nothing to reach: loaded when made


def test_bad_requests_are_fatal(backend: Any) -> None:
    from persona_collapse.backends import BackendError, Fatal

    chat = [{"role": "user", "content": "hi"}]
    for request in (ChatRequest(chat, 1.0, 0), ChatRequest(chat, -1.0, 1)):
        with pytest.raises(BackendError) as info:
            _ask(backend, [request])
        assert isinstance(info.value.decision, Fatal)


# -- the command line, end to end --------------------------------------------------------------


def _stored(store: Path, run_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as conn:
        return conn.execute(
            "SELECT persona_id, item_id, repetition, rating, distribution, extra "
            "FROM responses WHERE run_id = ? ORDER BY 1, 2, 3",
            (run_id,),
        ).fetchall()


def test_run_logprobs_and_sample_end_to_end(
    capsys: pytest.CaptureFixture[str], tiny: Path, tmp_path: Path, persona_file: Path, backend: Any
) -> None:
    store = tmp_path / "hf.db"
    common = [
        "--store",
        str(store),
        "--personas",
        str(persona_file),
        "--n-personas",
        "3",
        "--quiet",
    ]
    model = f"hf/{tiny}"

    lp = run_cli(capsys, "run", model, "--method", "logprobs", *common)
    assert lp.status == 0, lp.err
    lp_source = lp.out.strip()
    run_id = lp_source.rsplit(":", 1)[1]
    rows = _stored(store, run_id)
    assert len(rows) == 3 * N_ITEMS
    inst = load_instrument("mfq30")
    for persona, item, rep, rating, dist, extra in rows[::7]:
        assert rep == 1
        probs = np.array(json.loads(dist))
        brute = _brute_force_digits(
            backend, slot_messages(inst, item, PERSONAS[persona], logprobs=True)
        )
        assert np.abs(probs - brute[:6] / brute[:6].sum()).max() < 1e-6
        assert rating == int(np.argmax(probs))
        info = json.loads(extra)
        assert info["floor_mass"] == 0.0 and info["absent"] == []

    sample = run_cli(
        capsys, "run", model, "--method", "sample", "--reps", "2", "--temperature", "1.0", *common
    )
    assert sample.status == 0, sample.err
    sample_source = sample.out.strip()
    rows = _stored(store, sample_source.rsplit(":", 1)[1])
    assert len(rows) == 3 * N_ITEMS * 2
    assert {r[:3] for r in rows} == {
        (p, i, r) for p in range(3) for i in range(1, N_ITEMS + 1) for r in (1, 2)
    }
    ratings = [r[3] for r in rows]
    assert all(-1 <= x <= 5 for x in ratings) and len(set(ratings)) > 2

    for source in (lp_source, sample_source):
        metrics = run_cli(
            capsys,
            "metrics",
            source,
            "--format",
            "json",
            "--persona-draws",
            "50",
            "--repetition-draws",
            "10",
        )
        assert metrics.status == 0, metrics.err
        doc = metrics.json()[0]
        assert doc["n_personas"] == 3 and doc["S"] > 0 and doc["sigma_bar"] > 0


def test_missing_model_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, persona_file: Path, offline: None
) -> None:
    _need_hf()
    for model in (f"hf/{tmp_path / 'nowhere'}", "hf/no-such-org/no-such-model"):
        result = run_cli(
            capsys,
            "run",
            model,
            "--store",
            str(tmp_path / "x.db"),
            "--personas",
            str(persona_file),
            "--n-personas",
            "3",
            "--quiet",
        )
        assert result.status == 2
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.err
        assert "hf/" in lines[0]
    assert not (tmp_path / "x.db").exists()


def test_bad_gguf_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    persona_file: Path,
    offline: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A missing .gguf file and a file that is not GGUF: one line each, nothing cached."""
    _need_hf()
    pytest.importorskip("gguf", reason="the hf extra (gguf) is not installed")
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path / "cache"))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    for model, words in (
        (f"hf/{tmp_path / 'nowhere.gguf'}", "no GGUF file"),
        (f"hf/{junk}", "GGUF"),
    ):
        result = run_cli(
            capsys, "run", model, "--store", str(tmp_path / "x.db"),
            "--personas", str(persona_file), "--n-personas", "3", "--quiet",
        )  # fmt: skip
        assert result.status == 2, result.err
        lines = [line for line in result.err.strip().splitlines() if "converting" not in line]
        assert len(lines) == 1 and "Traceback" not in result.err, result.err
        assert words in lines[0]
    leftovers = list((tmp_path / "cache" / "hf-gguf").glob("*"))
    assert leftovers == [], leftovers  # no half-written conversion stays in the cache
    assert not (tmp_path / "x.db").exists()


def test_is_gguf() -> None:
    from persona_collapse.backends.local import is_gguf

    assert is_gguf("/m/SmolLM2.Q4_1.gguf") and is_gguf("./x.GGUF")
    assert not is_gguf("Qwen/Qwen2.5-0.5B-Instruct") and not is_gguf("/m/folder")


def test_looks_local() -> None:
    from persona_collapse.backends.local import looks_local

    assert all(looks_local(n) for n in ("/m/folder", "./x", "../x", "~/models/x"))
    assert not looks_local("Qwen/Qwen2.5-0.5B-Instruct") and not looks_local("models/x")


# -- persona geometry ------------------------------------------------------------------------------


def _pr_by_eigenvalues(states: np.ndarray) -> np.ndarray:
    out = []
    for layer in states:
        centred = layer - layer.mean(axis=0)
        lam = np.clip(np.linalg.eigvalsh(np.cov(centred, rowvar=False)), 0.0, None)
        out.append(lam.sum() ** 2 / (lam**2).sum() if (lam**2).sum() > 0 else 0.0)
    return np.array(out)


def test_participation_ratio_matches_eigenvalues() -> None:
    rng = np.random.default_rng(0)
    # Both branches: more points than dimensions (scatter matrix) and fewer (Gram matrix).
    for n, d in ((40, 6), (5, 30)):
        points = rng.normal(size=(3, n, d)) * rng.uniform(0.1, 3.0, size=d)
        assert np.allclose(participation_ratio(points), _pr_by_eigenvalues(points), rtol=1e-10)
    line = np.outer(rng.normal(size=20), rng.normal(size=4))
    assert participation_ratio(line) == pytest.approx(1.0)
    assert participation_ratio(np.ones((5, 3))) == 0.0


def test_geometry_per_layer_matches_eigendecomposition(tiny: Path, backend: Any) -> None:
    from persona_collapse.geometry import final_token_states, measure_geometry, persona_messages

    inst = load_instrument("mfq30")
    personas = [*PERSONAS, "A jazz musician.", "A tax accountant who collects stamps."]
    result = measure_geometry(backend.loaded, personas, item=5, batch_size=2)
    states = final_token_states(backend.loaded, persona_messages(inst, personas, 5), batch_size=2)
    assert states.shape == (3, len(personas), 32)  # embeddings + 2 layers
    assert np.allclose(result.participation_ratio, _pr_by_eigenvalues(states), rtol=1e-8)
    assert all(0 < pr <= result.max_pr for pr in result.participation_ratio[1:])
    # Batched (left-padded) states equal the states of each prompt alone.
    alone = np.concatenate(
        [final_token_states(backend.loaded, persona_messages(inst, [p], 5)) for p in personas],
        axis=1,
    )
    assert np.abs(alone - states).max() < 1e-4


def test_geometry_command(
    capsys: pytest.CaptureFixture[str], tiny: Path, persona_file: Path
) -> None:
    result = run_cli(
        capsys,
        "geometry",
        f"hf/{tiny}",
        "--personas",
        str(persona_file),
        "--n-personas",
        "3",
        "--format",
        "json",
    )
    assert result.status == 0, result.err
    doc = result.json()
    assert doc["n_personas"] == 3 and doc["prompt"] == "persona" and doc["max_pr"] == 2
    assert [r["layer"] for r in doc["layers"]] == [0, 1, 2]
    table = run_cli(
        capsys, "geometry", f"hf/{tiny}", "--personas", str(persona_file), "--n-personas", "3"
    )
    assert table.status == 0 and "PR" in table.out
    wrong = run_cli(
        capsys, "geometry", "sim/base", "--personas", str(persona_file), "--n-personas", "3"
    )
    assert wrong.status == 2 and "hf/MODEL" in wrong.err


# -- vLLM: only what runs without it ---------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_missing_extra_is_one_clear_line() -> None:
    from persona_collapse.backends.local import import_vllm

    with pytest.raises(ConfigError) as info:
        create_backend("vllm/Qwen/Qwen2.5-0.5B-Instruct")
    assert "pip install 'persona-collapse[vllm]'" in info.value.message
    with pytest.raises(ConfigError) as info:
        import_vllm()
    assert "persona-collapse[vllm]" in info.value.message and "--base-url" in info.value.message

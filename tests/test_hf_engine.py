"""The ``hf/`` engine under adversarial batches: every answer must be the one the same request
gets alone (no prefix cache, one request per pass) and must go back to the request that asked;
and its micro-batcher closed mid-batch.

Models are the tiny random ones of :func:`persona_collapse.testing.build_tiny_model`, loaded
offline; tests skip without the ``hf`` extra.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SKIP_REASON = "the hf extra (transformers) is not installed: pip install 'persona-collapse[hf]'"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("torch", reason=SKIP_REASON)
    pytest.importorskip("transformers", reason=SKIP_REASON)
    pytest.importorskip("tokenizers", reason=SKIP_REASON)
    from persona_collapse.backends.local import load_hf
    from persona_collapse.testing import build_tiny_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("PERSONA_COLLAPSE_HF_DEVICE", "cpu")
        path = build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", arch="llama")
        yield load_hf(str(path))


def _request(ids: Any, k: int) -> Any:
    """Request ``k``: its own seed; sampled at T = 1 or greedy, 1 to 4 tokens, digits on half."""
    from persona_collapse.backends._hf_engine import EngineRequest

    return EngineRequest(
        np.asarray(ids, dtype=np.int64),
        temperature=0.0 if k % 5 == 0 else 1.0,
        max_tokens=1 + k % 4,
        seed=1000 + k,
        digits=k % 2 == 0,
    )


def _alone(loaded: Any, requests: list[Any]) -> list[Any]:
    from persona_collapse.backends.local import HFEngine

    plain = HFEngine(loaded, prefix_cache=False)
    return [plain.run([r])[0] for r in requests]


def _assert_same(got: list[Any], expected: list[Any]) -> None:
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.token_ids == b.token_ids, k
        assert a.prompt_tokens == b.prompt_tokens, k
        assert (a.digit_logprobs is None) == (b.digit_logprobs is None), k
        if a.digit_logprobs is not None:
            assert np.abs(a.digit_logprobs - b.digit_logprobs).max() < 1e-5, k


def _tree_prompts() -> list[np.ndarray]:
    """Prompts reusing different prefixes of different lengths: a long header cut at random
    points, four persona texts of 1-30 tokens, 1-5 item tokens; plus a prompt that is
    another's prefix, a prompt equal to another, prompts of one and two tokens."""
    rng = np.random.default_rng(1)
    header = rng.integers(10, 500, size=40)
    out = []
    for _ in range(4):
        persona = rng.integers(10, 500, size=int(rng.integers(1, 30)))
        for i in range(5):
            head = header[: int(rng.integers(1, 40))] if i % 2 else header
            item = rng.integers(10, 500, size=int(rng.integers(1, 6)))
            out.append(np.concatenate([head, persona, item]))
    out += [out[0][:-2], out[3].copy(), header[:1], header[:2], np.array([7])]
    return out


def test_mixed_batches_answer_like_each_request_alone(loaded: Any) -> None:
    """Prefix-reused, padded, split and reordered batches give each request its lone answer:
    the tuner split at every boundary (1 position per pass), caches too small to hold a
    prompt, a prefix or the batch, and the requests asked in reverse order the second time."""
    from persona_collapse.backends.local import HFEngine

    requests = [_request(ids, k) for k, ids in enumerate(_tree_prompts())]
    expected = _alone(loaded, requests)
    assert len({tuple(r.token_ids) for r in expected}) > len(requests) // 2  # distinguishable
    for positions, cache_tokens in ((1, 1), (17, 45), (60, 100), (None, 16384)):
        engine = HFEngine(
            loaded,
            prefix_cache=True,
            min_saving=0,
            min_shared=1,
            cache_tokens=cache_tokens,
            forward_positions=positions,
        )
        _assert_same(engine.run(requests), expected)
        _assert_same(engine.run(requests[::-1])[::-1], expected)
        if cache_tokens > 60:
            assert engine.cache.reused_tokens > 0


class _FailOnce:
    """A forward pre-hook that raises a (simulated) out-of-memory error on call ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.calls = 0

    def __call__(self, module: Any, args: Any, kwargs: Any) -> None:
        import torch

        self.calls += 1
        if self.calls == self.at:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")


def test_a_failed_pass_leaves_the_engine_answering_right(loaded: Any) -> None:
    """Out of memory in any forward (prefix pass, prompt pass, decoding step) raises; the next
    run still gives every request its lone answer (no half-written cache entry is reused)."""
    import torch

    from persona_collapse.backends.local import HFEngine

    requests = [_request(ids, k) for k, ids in enumerate(_tree_prompts()[:12])]
    expected = _alone(loaded, requests)
    counter = _FailOnce(0)
    handle = loaded.model.register_forward_pre_hook(counter, with_kwargs=True)
    try:
        HFEngine(loaded, prefix_cache=True, min_saving=0, forward_positions=60).run(requests)
    finally:
        handle.remove()
    assert counter.calls > 4  # a prefix pass, several prompt passes, decoding steps
    for at in range(1, counter.calls + 1):
        engine = HFEngine(
            loaded, prefix_cache=True, min_saving=0, forward_positions=60, cache_tokens=200
        )
        handle = loaded.model.register_forward_pre_hook(_FailOnce(at), with_kwargs=True)
        try:
            with pytest.raises(torch.OutOfMemoryError):
                engine.run(requests)
        finally:
            handle.remove()
        _assert_same(engine.run(requests), expected)


def test_out_of_memory_in_the_backend_retries_every_request_then_answers(
    loaded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hf/``: an out-of-memory batch is a Retry for each of its requests (no answer is
    handed out), the next batches are half as large, and the retried requests get the
    answers they get alone."""
    import asyncio

    from persona_collapse.backends import BackendError, ChatRequest, ModelSpec, Retry
    from persona_collapse.backends.local import HFBackend
    from persona_collapse.instruments import load_instrument
    from persona_collapse.protocol import slot_messages

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PERSONA_COLLAPSE_HF_DEVICE", "cpu")
    inst = load_instrument("mfq30")
    personas = ["A pirate captain.", "A devout nun who lives in a quiet convent."]
    requests = [
        ChatRequest(
            slot_messages(inst, item, p, logprobs=k % 2 == 0),
            temperature=1.0,
            max_tokens=1 + k % 3,
            top_logprobs=20 if k % 2 == 0 else None,
            seed=k,
        )
        for k, (p, item) in enumerate((p, i) for p in personas for i in (1, 2, 3, 4))
    ]

    async def ask(backend: Any, batch: list[Any]) -> list[Any]:
        return list(
            await asyncio.gather(*(backend.complete(r) for r in batch), return_exceptions=True)
        )

    spec = ModelSpec("hf", loaded.name)
    backend = HFBackend(spec, max_batch_size=8)
    alone = HFBackend(spec, prefix_cache=False, max_batch_size=1)
    expected = [asyncio.run(ask(alone, [r]))[0] for r in requests]
    handle = backend.loaded.model.register_forward_pre_hook(_FailOnce(2), with_kwargs=True)
    try:
        failed = asyncio.run(ask(backend, requests))
    finally:
        handle.remove()
    assert all(isinstance(e, BackendError) and isinstance(e.decision, Retry) for e in failed)
    assert backend.max_batch_size == 4
    got = asyncio.run(ask(backend, requests[::-1]))[::-1]
    assert [r.text for r in got] == [r.text for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert (a.top_logprobs is None) == (b.top_logprobs is None)
        if a.top_logprobs is not None:
            da, db = dict(a.top_logprobs), dict(b.top_logprobs)
            assert da.keys() == db.keys()
            assert max(abs(np.exp(da[t]) - np.exp(db[t])) for t in da) < 1e-6


def test_a_sliding_window_model_decodes_a_padded_batch_like_each_prompt_alone(
    loaded: Any, tmp_path: Path
) -> None:
    """A sliding-window model (prefix reuse off): left-padded rows keep decoding their own
    continuation; greedy tokens equal those of full forwards over the growing sequence."""
    import torch

    from persona_collapse.backends._hf_engine import EngineRequest
    from persona_collapse.backends.local import HFEngine, load_hf
    from persona_collapse.testing import build_tiny_model

    folder = build_tiny_model(tmp_path / "qwen2", arch="qwen2")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(use_sliding_window=True, sliding_window=12, max_window_layers=0)
    config.pop("layer_types", None)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    windowed = load_hf(str(folder))
    engine = HFEngine(windowed)
    assert not engine.prefix_cache
    rng = np.random.default_rng(3)
    prompts = [rng.integers(10, 500, size=n) for n in (5, 20, 33)]

    def greedy(ids: np.ndarray, steps: int) -> list[int]:
        tokens = ids.tolist()
        with torch.inference_mode():
            for _ in range(steps):
                logits = windowed.model(torch.tensor([tokens])).logits[0, -1]
                tokens.append(int(logits.argmax()))
        return tokens[ids.size :]

    got = engine.run([EngineRequest(p, temperature=0.0, max_tokens=8, seed=0) for p in prompts])
    assert [r.token_ids for r in got] == [greedy(p, 8) for p in prompts]


def test_an_empty_prompt_is_refused_not_answered_from_padding(
    loaded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty prompt has no next-token distribution: the engine refuses it (alone it used
    to crash inside the model, in a batch it got the logits of a row of pads), and ``hf/``
    fails that request alone while the others of its batch get their lone answers."""
    import asyncio

    from persona_collapse.backends import BackendError, ChatRequest, Fatal, ModelSpec
    from persona_collapse.backends._hf_engine import EngineRequest
    from persona_collapse.backends.local import HFBackend, HFEngine

    empty = EngineRequest(np.zeros(0, dtype=np.int64), temperature=0.0, max_tokens=1, seed=0)
    other = _request(np.arange(10, 20), 0)
    engine = HFEngine(loaded)
    for batch in ([empty], [empty, other], [other, empty]):
        with pytest.raises(ValueError, match="empty"):
            engine.run(batch)
    with pytest.raises(ValueError, match="empty"):
        engine.next_token_logprobs([np.arange(10, 20), np.zeros(0, dtype=np.int64)])

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PERSONA_COLLAPSE_HF_DEVICE", "cpu")
    backend = HFBackend(ModelSpec("hf", loaded.name))
    backend.engine.tokenizer.chat_template = None  # raw text: "" has no token at all
    requests = [
        ChatRequest([{"role": "user", "content": "hi there"}], 0.0, 2, seed=1),
        ChatRequest([{"role": "user", "content": ""}], 0.0, 2, seed=2),
    ]
    assert backend.engine.encode(requests[1].messages).size == 0

    async def ask(batch: list[Any]) -> list[Any]:
        return list(
            await asyncio.gather(*(backend.complete(r) for r in batch), return_exceptions=True)
        )

    answered, refused = asyncio.run(ask(requests))
    assert isinstance(refused, BackendError) and isinstance(refused.decision, Fatal)
    assert "empty" in str(refused)
    assert answered.text == asyncio.run(ask(requests[:1]))[0].text


def test_prompts_with_the_same_bytes_in_other_dtypes_are_not_merged(loaded: Any) -> None:
    """``run`` answers a repeated prompt once: int32 ids ``[5, 0, 9, 0]`` have the bytes of
    int64 ``[5, 9]``, yet they are different prompts and each gets its own answer."""
    from persona_collapse.backends._hf_engine import EngineRequest
    from persona_collapse.backends.local import HFEngine

    prompts = [np.array([5, 0, 9, 0], dtype=np.int32), np.array([5, 9], dtype=np.int64)]
    assert prompts[0].tobytes() == prompts[1].tobytes()
    requests = [EngineRequest(ids, 0.0, 1, seed=0, digits=True) for ids in prompts]
    expected = _alone(loaded, requests)
    assert expected[0].token_ids != expected[1].token_ids
    _assert_same(HFEngine(loaded).run(requests), expected)


def test_the_prefix_cache_owns_its_token_ids(loaded: Any) -> None:
    """A caller may reuse its prompt buffer: what the cache stored stays the tokens it computed
    (it used to keep the caller's array, so the entry's ids changed under its states and
    every later lookup that found the entry failed with a KeyError)."""
    from persona_collapse.backends.local import HFEngine

    engine = HFEngine(loaded, prefix_cache=True)
    plain = HFEngine(loaded, prefix_cache=False)
    rng = np.random.default_rng(5)
    buffer = rng.integers(10, 500, size=40)
    first = buffer.copy()
    engine.next_token_logprobs([buffer])  # stored whole: 40 fresh positions
    assert len(engine.cache) == 1
    buffer[:] = rng.integers(10, 500, size=40)  # the next prompt, in the same buffer
    prompts = [np.concatenate([buffer, [7, 8]]), np.concatenate([first, [9]])]
    got = engine.next_token_logprobs(prompts)
    assert np.abs(got - plain.next_token_logprobs(prompts)).max() < 1e-5
    assert engine.cache.reused_tokens >= 40  # the second prompt reused the stored one


def test_closing_the_batcher_mid_batch_releases_its_callers() -> None:
    """``aclose`` while a batch runs: its callers are cancelled, not left waiting forever
    (the drain task was cancelled at its await and nobody settled the batch's futures)."""
    import asyncio
    import time

    from persona_collapse.backends._hf_batch import MicroBatcher

    def process(batch: list[int]) -> list[int]:
        time.sleep(0.2)
        return [2 * x for x in batch]

    async def go() -> list[bool]:
        batcher: MicroBatcher[int, int] = MicroBatcher(process, lambda e: e, max_batch=4)
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
        await asyncio.sleep(0.05)  # the batch is in the worker thread now
        await batcher.aclose()
        done, _ = await asyncio.wait(tasks, timeout=2)
        return [t in done and t.cancelled() for t in tasks]

    assert asyncio.run(go()) == [True, True, True]

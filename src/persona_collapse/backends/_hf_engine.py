"""The synchronous inference engine behind ``hf/``: batched next-token logits with prefix reuse.

Conventions:

* A prompt is the chat template (``add_generation_prompt=True``) applied to the
  request's messages, tokenised without adding special tokens again; a
  tokenizer without a chat template gets the raw text of the messages
  (joined by blank lines) with its usual special tokens.
* A batch's prompts are sorted (a persona's prompts stay together); the
  prefixes they share are computed once (:mod:`._hf_plan`), then the prompts
  go through left-padded forward passes of about :attr:`HFEngine.budget`
  positions each (:mod:`._hf_tune`, :mod:`._hf_forward`). With prefix reuse
  a row is ``[pad][cached prefix][pad][new tokens]``, so every row sees
  exactly the positions and keys it would see alone; only the last
  position's logits are computed.
* All probabilities are computed in float64 from the logits:
  ``log p = log_softmax(logits)``; at temperature ``T`` a token is drawn from
  ``softmax(log p / T)`` with the request's own seeded ``torch.Generator``
  (``T = 0``: the argmax).
* Digit probabilities: every vocabulary token whose decoded text, stripped of
  whitespace, is one ASCII digit ``0``-``9`` counts for that digit
  (``"3"``, ``" 3"``, ``"3\\n"``, a byte-fallback ``<0x33>``), and the
  probabilities of a digit's tokens are summed over the whole vocabulary:
  exact, not limited to a top-k.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._hf_cache import PrefixCache
from ._hf_forward import Prefill, Row, forward_rows, last_logprobs, plain_layout, row_states
from ._hf_load import LoadedModel, chat_prompt_ids
from ._hf_plan import choose_prefixes
from ._hf_tune import ForwardBudget, split_by_budget

__all__ = [
    "DIGITS",
    "EngineRequest",
    "EngineResult",
    "HFEngine",
    "digit_token_ids",
    "plain_kv_cache",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
DIGITS = tuple(str(d) for d in range(10))
_ENCODE_CACHE = 8192


@dataclass(frozen=True)
class EngineRequest:
    """One prompt to continue. ``digits``: also report the exact digit log-probabilities.

    ``ids`` is kept as a one-dimensional int64 array (converted if given otherwise), so
    that equal prompts, and only those, have equal bytes.
    """

    ids: IntArray
    temperature: float
    max_tokens: int
    seed: int
    digits: bool = False

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"a prompt is one sequence of token ids, got shape {ids.shape}")
        object.__setattr__(self, "ids", ids)


@dataclass
class EngineResult:
    """What one request produced.

    ``digit_logprobs``: natural log of the summed probability of each digit
    0-9 at T = 1 (``-inf`` where no token spells it); ``spellings``: (decoded
    token text, log p) of every vocabulary token that spells a digit, most
    likely first; ``other_logprob``: log of the remaining mass (None when it is 0).
    """

    token_ids: list[int]
    text: str
    finish_reason: str
    prompt_tokens: int
    digit_logprobs: FloatArray | None = None
    spellings: list[tuple[str, float]] | None = None
    other_logprob: float | None = None


def digit_token_ids(tokenizer: Any, vocab_size: int) -> list[IntArray]:
    """Token ids spelling each digit 0-9 (decoded text stripped), over the whole vocabulary."""
    n = min(int(vocab_size), len(tokenizer))
    texts = tokenizer.batch_decode(
        [[i] for i in range(n)], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    stripped = np.array([t.strip() for t in texts], dtype=object)
    return [np.flatnonzero(stripped == d).astype(np.int64) for d in DIGITS]


def plain_kv_cache(config: Any) -> bool:
    """Whether every layer keeps plain full-attention keys/values (prefix reuse is exact then).

    Sliding-window, linear-attention and recurrent layers are not: such models
    run without prefix reuse.
    """
    types = getattr(config, "layer_types", None)
    if types and any(t != "full_attention" for t in types):
        return False
    window = getattr(config, "sliding_window", None)
    return not (window and getattr(config, "use_sliding_window", True))


class HFEngine:
    """Batched next-token computation for one loaded model (not thread-safe: one caller at a time).

    ``prefix_cache``: reuse the keys/values of shared prompt prefixes (the
    chat header and persona text common to a persona's items). ``cache_tokens``:
    most token positions kept in the prefix cache. The prefixes shared by
    several prompts of one batch (one per persona, see :mod:`._hf_plan`) are
    computed once, in an extra forward pass, when they save at least
    ``min_saving`` positions in all, each adding at least ``min_shared``
    positions to what the cache holds; a prompt with no such partner that
    computed at least ``min_shared`` fresh positions is stored whole after its
    pass, so that the next prompts sharing its head reuse it. ``forward_positions``:
    positions per forward pass; None (the default) measures the best size
    while running (:class:`._hf_tune.ForwardBudget`, :attr:`budget`).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        prefix_cache: bool = True,
        cache_tokens: int = 16384,
        min_shared: int = 8,
        min_saving: int = 256,
        forward_positions: int | None = None,
    ) -> None:
        import torch

        self.loaded = loaded
        self.torch = torch
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.prefix_cache = bool(prefix_cache) and plain_kv_cache(self.model.config)
        self.cache = PrefixCache(cache_tokens)
        self.min_shared = int(min_shared)
        self.min_saving = int(min_saving)
        self.budget = ForwardBudget(fixed=forward_positions)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.vocab_size = loaded.vocab_size
        self.digit_ids = digit_token_ids(self.tokenizer, self.vocab_size)
        self._digit_index = [torch.as_tensor(ids, device=self.device) for ids in self.digit_ids]
        spelling_ids = np.concatenate(self.digit_ids)
        self._spelling_index = torch.as_tensor(spelling_ids, device=self.device)
        self.spelling_texts: list[str] = self.tokenizer.batch_decode(
            [[int(i)] for i in spelling_ids],
            skip_special_tokens=False,
            clean_up_tokenization_spaces=False,
        )
        self.eos_ids = self._eos_ids()
        self._encoded: OrderedDict[str, IntArray] = OrderedDict()
        self.has_template = bool(getattr(self.tokenizer, "chat_template", None))

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        gen = getattr(self.model, "generation_config", None)
        for source in (getattr(gen, "eos_token_id", None), self.tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, list | tuple):
                ids.update(int(i) for i in source)
        return ids

    # -- prompts -----------------------------------------------------------------

    def encode(self, messages: Sequence[dict[str, str]]) -> IntArray:
        """Token ids of the chat prompt (chat template with the generation prompt)."""
        key = json.dumps(list(messages), sort_keys=True)
        hit = self._encoded.get(key)
        if hit is not None:
            self._encoded.move_to_end(key)
            return hit
        ids = chat_prompt_ids(self.tokenizer, messages)
        arr = np.asarray(ids, dtype=np.int64)
        arr.setflags(write=False)
        self._encoded[key] = arr
        if len(self._encoded) > _ENCODE_CACHE:
            self._encoded.popitem(last=False)
        return arr

    # -- the prompt pass ------------------------------------------------------------

    def _disable_reuse(self) -> None:
        """The model's cache is not one plain tensor per layer: run without prefix reuse."""
        self.prefix_cache = False
        self.cache.clear()

    def _share_prefixes(self, prompts: Sequence[IntArray]) -> set[int]:
        """Compute the prefixes shared within this batch (:mod:`._hf_plan`) into the prefix
        cache, in one extra pass; returns the prompts they serve."""
        if not self.prefix_cache or len(prompts) < 2:
            return set()
        hits = [self.cache.longest(p, p.size - 1)[1] for p in prompts]
        choice = choose_prefixes(
            prompts,
            hits,
            lambda ids: self.cache.longest(ids)[1],
            min_saving=self.min_saving,
            min_extension=self.min_shared,
        )
        rows = []
        for ids in choice.prefixes:
            entry, reuse = self.cache.longest(ids)
            if reuse < ids.size:
                rows.append((ids, entry, reuse))
        if not rows:
            return choice.covered
        prefill = forward_rows(self.loaded, rows, self.pad_id)
        if not plain_layout(prefill):
            self._disable_reuse()
            return set()
        for b, (ids, _, _) in enumerate(rows):
            self.cache.add(ids, row_states(prefill, b))
        return choice.covered

    def _lookup(self, prompt: IntArray) -> Row:
        """The cached entry ``prompt`` reuses and how many positions (at most all but one)."""
        if not self.prefix_cache:
            return (prompt, None, 0)
        entry, reuse = self.cache.longest(prompt, prompt.size - 1)
        return (prompt, entry, reuse)

    def _pass(self, prompts: Sequence[IntArray], store: Sequence[bool]) -> Prefill:
        """One forward pass over ``prompts``; a prompt with ``store`` set of which the cache
        served less than a third is stored whole, so that the next prompts sharing its head
        (its persona's other items) reuse it."""
        rows = [self._lookup(p) for p in prompts]
        if self.prefix_cache:
            for _, _, reuse in rows:
                self.cache.record(reuse)
        prefill = forward_rows(self.loaded, rows, self.pad_id)
        if self.prefix_cache and not plain_layout(prefill):
            self._disable_reuse()
        elif self.prefix_cache:
            for b, (ids, _, reuse) in enumerate(rows):
                fresh = ids.size - reuse
                if store[b] and fresh >= self.min_shared and 3 * reuse < ids.size:
                    self.cache.add(ids, row_states(prefill, b))
        return prefill

    def passes(self, prompts: Sequence[IntArray]) -> Iterator[tuple[list[int], Prefill]]:
        """The prompt passes over distinct ``prompts``: (indices of the pass's prompts, pass).

        Shared prefixes are computed first, into the prefix cache; then the
        prompts, sorted by the positions each still has to compute (so that a
        pass pads little), go in passes of the size :attr:`budget` picks. An empty prompt
        is a ValueError: it has no last position to predict from.
        """
        if any(p.size == 0 for p in prompts):
            raise ValueError("an empty prompt has no next token to predict (give at least one)")
        covered = self._share_prefixes(prompts)
        fresh = [int(p.size) - self._lookup(p)[2] for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (fresh[i], prompts[i].tolist()))
        sizes = [fresh[i] for i in order]
        start = 0
        while start < len(order):
            budget = self.budget.budget_for(sum(sizes[start:]))
            span = split_by_budget(sizes[start:], budget)[0]
            chunk = order[start : start + len(span)]
            began = time.perf_counter()
            prefill = self._pass([prompts[i] for i in chunk], [i not in covered for i in chunk])
            self.budget.record(budget, prefill.fresh_positions, time.perf_counter() - began)
            start += len(span)
            yield chunk, prefill

    # -- public ----------------------------------------------------------------------

    def next_token_logprobs(self, prompts: Sequence[IntArray]) -> FloatArray:
        """float64 log-probabilities of the next token after each prompt, ``[prompts, vocab]``."""
        arrays = [np.asarray(p, dtype=np.int64) for p in prompts]
        out = np.empty((len(arrays), self.vocab_size), dtype=np.float64)
        with self.torch.inference_mode():
            for chunk, prefill in self.passes(arrays):
                out[chunk] = prefill.logprobs.cpu().numpy()
        return out

    def digit_logprobs(self, logprobs: Any) -> tuple[FloatArray, FloatArray, FloatArray]:
        """From float64 log-probs ``[rows, vocab]``: log P(digit) ``[rows, 10]`` (spellings
        summed), log P(each digit token) ``[rows, spellings]`` (order of ``spelling_texts``)
        and log P(anything else) ``[rows]``."""
        torch = self.torch
        rows = logprobs.shape[0]
        cols = [
            torch.logsumexp(logprobs[:, idx], dim=-1)
            if idx.numel()
            else torch.full((rows,), float("-inf"), dtype=torch.float64, device=logprobs.device)
            for idx in self._digit_index
        ]
        digits = torch.stack(cols, dim=1).cpu().numpy()
        tokens = logprobs[:, self._spelling_index].cpu().numpy()
        with np.errstate(divide="ignore"):
            other = np.log(np.clip(1.0 - np.exp(digits).sum(axis=1), 0.0, 1.0))
        return (
            np.asarray(digits, dtype=np.float64),
            np.asarray(tokens, dtype=np.float64),
            np.asarray(other, dtype=np.float64),
        )

    def _spellings(self, token_logprobs: FloatArray) -> list[tuple[str, float]]:
        order = np.argsort(-token_logprobs, kind="stable")
        return [
            (self.spelling_texts[k], float(token_logprobs[k]))
            for k in order
            if np.isfinite(token_logprobs[k])
        ]

    def _sample(self, logprobs: Any, temperature: float, generator: Any) -> int:
        torch = self.torch
        if temperature <= 0:
            return int(torch.argmax(logprobs).item())
        probs = torch.softmax(logprobs.cpu() / float(temperature), dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator).item())

    def run(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        """Answer a batch: prompt passes over the distinct prompts, then decoding where asked."""
        index: dict[bytes, int] = {}
        prompts: list[IntArray] = []
        asking: list[list[int]] = []  # per distinct prompt, the requests that asked for it
        for i, r in enumerate(requests):
            key = r.ids.tobytes()
            if key not in index:
                index[key] = len(prompts)
                prompts.append(r.ids)
                asking.append([])
            asking[index[key]].append(i)
        results: list[EngineResult | None] = [None] * len(requests)
        with self.torch.inference_mode():
            for chunk, prefill in self.passes(prompts):
                which = [(row, i) for row, p in enumerate(chunk) for i in asking[p]]
                for i, result in zip(
                    (i for _, i in which),
                    self._answer(
                        prefill, [row for row, _ in which], [requests[i] for _, i in which]
                    ),
                    strict=True,
                ):
                    results[i] = result
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _answer(
        self, prefill: Prefill, rows: list[int], requests: list[EngineRequest]
    ) -> list[EngineResult]:
        """The results of ``requests``, each continuing row ``rows[k]`` of ``prefill``."""
        torch = self.torch
        digits = spelled = other = None
        if any(r.digits for r in requests):
            digits, spelled, other = self.digit_logprobs(prefill.logprobs)
        gens = [torch.Generator().manual_seed(int(r.seed)) for r in requests]
        tokens = [
            [self._sample(prefill.logprobs[rows[k]], r.temperature, gens[k])]
            for k, r in enumerate(requests)
        ]
        more = [
            k
            for k, r in enumerate(requests)
            if r.max_tokens > 1 and tokens[k][0] not in self.eos_ids
        ]
        if more:
            self._decode(prefill, [rows[k] for k in more], more, requests, tokens, gens)
        results = []
        for k, r in enumerate(requests):
            ids = tokens[k]
            row = rows[k]
            asked = r.digits and digits is not None
            stopped = bool(ids) and ids[-1] in self.eos_ids
            results.append(
                EngineResult(
                    token_ids=ids,
                    text=self.tokenizer.decode(ids, skip_special_tokens=True),
                    finish_reason="stop" if stopped else "length",
                    prompt_tokens=int(r.ids.size),
                    digit_logprobs=digits[row] if asked and digits is not None else None,
                    spellings=self._spellings(spelled[row])
                    if asked and spelled is not None
                    else None,
                    other_logprob=float(other[row])
                    if asked and other is not None and np.isfinite(other[row])
                    else None,
                )
            )
        return results

    def _decode(
        self,
        prefill: Prefill,
        source_rows: list[int],
        which: list[int],
        requests: Sequence[EngineRequest],
        tokens: list[list[int]],
        gens: list[Any],
    ) -> None:
        """Continue the requests ``which`` (rows ``source_rows`` of the pass) token by token.

        The pass's cache is reordered in place to those rows (by the cache itself, so that
        a sliding-window layer keeps the count of positions it has seen: rebuilt from its
        kept keys alone, it would place the attention mask's window wrongly on padded rows).
        """
        torch = self.torch
        sel = torch.as_tensor(source_rows, device=self.device)
        cache = prefill.cache
        cache.reorder_cache(sel)
        mask = prefill.mask[sel]
        pos = prefill.next_pos[sel].clone()
        active = list(range(len(which)))
        steps = max(requests[i].max_tokens for i in which) - 1
        for _ in range(steps):
            last = torch.as_tensor([[tokens[i][-1]] for i in which], device=self.device)
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            logprobs = last_logprobs(self.loaded, last, mask, pos[:, None], cache)
            pos = pos + 1
            still = []
            for row in active:
                i = which[row]
                r = requests[i]
                tokens[i].append(self._sample(logprobs[row], r.temperature, gens[i]))
                if len(tokens[i]) < r.max_tokens and tokens[i][-1] not in self.eos_ids:
                    still.append(row)
            active = still
            if not active:
                break

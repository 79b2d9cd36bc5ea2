"""The synchronous inference engine behind ``hf/``: batched next-token logits with prefix reuse.

Conventions:

* A prompt is the chat template (``add_generation_prompt=True``) applied to the
  request's messages, tokenised without adding special tokens again; a
  tokenizer without a chat template gets the raw text of the messages
  (joined by blank lines) with its usual special tokens.
* Batches are left-padded. With prefix reuse a row is laid out as
  ``[pad][cached prefix][pad][new tokens]``: the prefix positions come from
  the :class:`PrefixCache`, the new tokens are computed, the attention mask
  hides the pads and ``position_ids`` count real tokens only, so every row
  sees exactly the positions and keys it would see alone.
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

import itertools
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ._hf_cache import CacheEntry, PrefixCache, common_prefix
from ._hf_load import LoadedModel, cache_layers, chat_prompt_ids, make_cache

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
    """One prompt to continue. ``digits``: also report the exact digit log-probabilities."""

    ids: IntArray
    temperature: float
    max_tokens: int
    seed: int
    digits: bool = False


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


@dataclass
class _Prefill:
    """A batch after its prompt pass: next-token log-probs and the state to continue decoding."""

    logprobs: Any  # [rows, vocab] float64
    cache: Any
    mask: Any  # [rows, past + new] long
    next_pos: Any  # [rows] long
    reused: list[int] = field(default_factory=list)


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
    most token positions kept in the prefix cache. A prefix shared by several
    prompts of one batch is computed once (an extra forward pass) when it
    saves at least ``min_shared`` positions per prompt and ``min_saving``
    positions in all; a prompt with no such partner is stored whole after its
    pass, so that the next prompts sharing its head reuse it.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        prefix_cache: bool = True,
        cache_tokens: int = 16384,
        min_shared: int = 8,
        min_saving: int = 256,
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

    def _forward(self, rows: Sequence[tuple[IntArray, CacheEntry | None, int]]) -> _Prefill:
        """One left-padded forward of ``rows`` (ids, cached entry, positions reused from it)."""
        torch = self.torch
        n = len(rows)
        past = max(reuse for _, _, reuse in rows)
        new = max(ids.size - reuse for ids, _, reuse in rows)
        input_ids = torch.full((n, new), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, past + new), dtype=torch.long)
        pos = torch.zeros((n, new), dtype=torch.long)
        for b, (ids, _, reuse) in enumerate(rows):
            fresh = ids.size - reuse
            input_ids[b, new - fresh :] = torch.from_numpy(ids[reuse:].copy())
            mask[b, past - reuse : past] = 1
            mask[b, past + new - fresh :] = 1
            pos[b, new - fresh :] = torch.arange(reuse, ids.size)
        layers: list[tuple[Any, Any]] = []
        if past:
            ref = next(entry for _, entry, reuse in rows if reuse == past and entry is not None)
            for index, (k_ref, v_ref) in enumerate(ref.layers):
                keys = k_ref.new_zeros((n, k_ref.shape[1], past, k_ref.shape[3]))
                values = v_ref.new_zeros((n, v_ref.shape[1], past, v_ref.shape[3]))
                for b, (_, entry, reuse) in enumerate(rows):
                    if reuse and entry is not None:
                        k, v = entry.layers[index]
                        keys[b, :, past - reuse :] = k[0, :, :reuse]
                        values[b, :, past - reuse :] = v[0, :, :reuse]
                layers.append((keys, values))
        cache = make_cache(self.loaded, layers)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "position_ids": pos.to(self.device),
            "use_cache": True,
            self.loaded.cache_arg: cache,
        }
        if self.loaded.logits_arg is not None:
            kwargs[self.loaded.logits_arg] = 1
        out = self.model(**kwargs)
        logits = out.logits[:, -1, :].to(torch.float64)
        return _Prefill(
            logprobs=torch.log_softmax(logits, dim=-1),
            cache=cache,
            mask=mask.to(self.device),
            next_pos=torch.as_tensor([int(ids.size) for ids, _, _ in rows], device=self.device),
            reused=[reuse for _, _, reuse in rows],
        )

    def _row_states(self, prefill: _Prefill, b: int, rows: Sequence[Any]) -> list[tuple[Any, Any]]:
        """Per-layer keys/values of row ``b``'s real tokens, ``[1, heads, len, dim]`` (copies)."""
        ids, _, reuse = rows[b]
        fresh = ids.size - reuse
        total = int(prefill.mask.shape[1])
        past = total - max(r[0].size - r[2] for r in rows)
        out = []
        for keys, values in cache_layers(prefill.cache):
            parts_k = [keys[b : b + 1, :, past - reuse : past], keys[b : b + 1, :, total - fresh :]]
            parts_v = [
                values[b : b + 1, :, past - reuse : past],
                values[b : b + 1, :, total - fresh :],
            ]
            out.append((self.torch.cat(parts_k, dim=2), self.torch.cat(parts_v, dim=2)))
        return out

    def _check_layout(self, prefill: _Prefill) -> bool:
        """The cache holds one plain key/value tensor per layer covering every position."""
        try:
            layers = cache_layers(prefill.cache)
        except TypeError:
            return False
        total = int(prefill.mask.shape[1])
        return bool(layers) and all(
            k is not None and k.dim() == 4 and k.shape[2] == total for k, _ in layers
        )

    def _compute_prefixes(self, prefixes: Sequence[IntArray]) -> None:
        """Put the states of ``prefixes`` into the prefix cache: one batched forward, each
        prefix extending its best cached one."""
        rows = []
        for ids in prefixes:
            entry, reuse = self.cache.longest(ids)
            if reuse < ids.size:
                rows.append((ids, entry, reuse))
        if not rows:
            return
        prefill = self._forward(rows)
        if not self._check_layout(prefill):
            self.prefix_cache = False
            self.cache.clear()
            return
        for b, (ids, _, _) in enumerate(rows):
            self.cache.add(ids, self._row_states(prefill, b, rows))

    def _shared_prefixes(self, prompts: Sequence[IntArray], hits: Sequence[int]) -> dict[int, int]:
        """Prefixes worth computing once for several prompts of this batch: {row: length}.

        Prompts sorted lexicographically are cut into runs whose neighbours share
        at least ``min_shared`` more tokens than the cache already holds for them;
        a run's common prefix is computed when it saves at least ``min_saving``
        token positions over the run (an extra forward pass costs about that much).
        """
        order = sorted(range(len(prompts)), key=lambda i: prompts[i].tolist())
        runs: list[list[int]] = [[order[0]]] if order else []
        shared: list[list[int]] = [[]]
        for a, b in itertools.pairwise(order):
            m = common_prefix(prompts[a], prompts[b])
            if m - max(hits[a], hits[b]) >= self.min_shared:
                runs[-1].append(b)
                shared[-1].append(m)
            else:
                runs.append([b])
                shared.append([])
        chosen: dict[int, int] = {}
        for run, lcps in zip(runs, shared, strict=True):
            if len(run) < 2:
                continue
            length = min(min(lcps), *(prompts[i].size - 1 for i in run))
            gain = length - max(hits[i] for i in run)
            if gain >= self.min_shared and (len(run) - 1) * gain >= self.min_saving:
                for i in run:
                    chosen[i] = length
        return chosen

    def _plan(
        self, prompts: Sequence[IntArray]
    ) -> tuple[list[tuple[IntArray, CacheEntry | None, int]], set[int]]:
        """Per prompt: the cached entry to reuse and how many positions (at most all but one);
        and the rows covered by a prefix computed for this batch."""
        if not self.prefix_cache:
            return [(p, None, 0) for p in prompts], set()
        hits = [self.cache.longest(p, p.size - 1)[1] for p in prompts]
        chosen = self._shared_prefixes(prompts, hits)
        if chosen:
            firsts: dict[bytes, IntArray] = {}
            for i, length in chosen.items():
                firsts.setdefault(prompts[i][:length].tobytes(), prompts[i][:length])
            self._compute_prefixes(list(firsts.values()))
        plan = []
        for p in prompts:
            entry, reuse = self.cache.longest(p, p.size - 1)
            self.cache.record(reuse)
            plan.append((p, entry, reuse))
        return plan, set(chosen)

    def prefill(self, prompts: Sequence[IntArray]) -> tuple[_Prefill, list[Any]]:
        """The prompt pass of distinct ``prompts``.

        A prompt that was mostly computed afresh and shared no prefix with
        others of its batch is stored whole in the prefix cache, so that the
        next prompts of its persona can reuse its head.
        """
        rows, covered = self._plan(prompts)
        prefill = self._forward(rows)
        if self.prefix_cache:
            if not self._check_layout(prefill):
                self.prefix_cache = False
                self.cache.clear()
            else:
                for b, (ids, _, reuse) in enumerate(rows):
                    fresh = ids.size - reuse
                    if b not in covered and fresh >= max(self.min_shared, ids.size // 2):
                        self.cache.add(ids, self._row_states(prefill, b, rows))
        return prefill, rows

    # -- public ----------------------------------------------------------------------

    def next_token_logprobs(self, prompts: Sequence[IntArray]) -> FloatArray:
        """float64 log-probabilities of the next token after each prompt, ``[prompts, vocab]``."""
        with self.torch.inference_mode():
            prefill, _ = self.prefill([np.asarray(p, dtype=np.int64) for p in prompts])
            return np.asarray(prefill.logprobs.cpu().numpy(), dtype=np.float64)

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
        """Answer a batch: one prompt pass over the distinct prompts, then decoding where asked."""
        torch = self.torch
        with torch.inference_mode():
            index: dict[bytes, int] = {}
            prompts: list[IntArray] = []
            rows_of: list[int] = []
            for r in requests:
                key = r.ids.tobytes()
                if key not in index:
                    index[key] = len(prompts)
                    prompts.append(r.ids)
                rows_of.append(index[key])
            prefill, _ = self.prefill(prompts)
            digits = spelled = other = None
            if any(r.digits for r in requests):
                digits, spelled, other = self.digit_logprobs(prefill.logprobs)
            gens = [torch.Generator().manual_seed(int(r.seed)) for r in requests]
            tokens = [
                [self._sample(prefill.logprobs[rows_of[i]], r.temperature, gens[i])]
                for i, r in enumerate(requests)
            ]
            more = [
                i
                for i, r in enumerate(requests)
                if r.max_tokens > 1 and tokens[i][0] not in self.eos_ids
            ]
            if more:
                self._decode(prefill, [rows_of[i] for i in more], more, requests, tokens, gens)
            results = []
            for i, r in enumerate(requests):
                ids = tokens[i]
                stopped = bool(ids) and ids[-1] in self.eos_ids
                results.append(
                    EngineResult(
                        token_ids=ids,
                        text=self.tokenizer.decode(ids, skip_special_tokens=True),
                        finish_reason="stop" if stopped else "length",
                        prompt_tokens=int(r.ids.size),
                        digit_logprobs=None
                        if digits is None or not r.digits
                        else digits[rows_of[i]],
                        spellings=None
                        if spelled is None or not r.digits
                        else self._spellings(spelled[rows_of[i]]),
                        other_logprob=None
                        if other is None or not r.digits or not np.isfinite(other[rows_of[i]])
                        else float(other[rows_of[i]]),
                    )
                )
            return results

    def _decode(
        self,
        prefill: _Prefill,
        source_rows: list[int],
        which: list[int],
        requests: Sequence[EngineRequest],
        tokens: list[list[int]],
        gens: list[Any],
    ) -> None:
        """Continue the requests ``which`` (rows ``source_rows`` of the prefill) token by token."""
        torch = self.torch
        sel = torch.as_tensor(source_rows, device=self.device)
        cache = make_cache(self.loaded, [(k[sel], v[sel]) for k, v in cache_layers(prefill.cache)])
        mask = prefill.mask[sel]
        pos = prefill.next_pos[sel].clone()
        active = list(range(len(which)))
        steps = max(requests[i].max_tokens for i in which) - 1
        for _ in range(steps):
            last = torch.as_tensor([[tokens[i][-1]] for i in which], device=self.device)
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            kwargs: dict[str, Any] = {
                "input_ids": last,
                "attention_mask": mask,
                "position_ids": pos[:, None],
                "use_cache": True,
                self.loaded.cache_arg: cache,
            }
            if self.loaded.logits_arg is not None:
                kwargs[self.loaded.logits_arg] = 1
            out = self.model(**kwargs)
            logprobs = torch.log_softmax(out.logits[:, -1, :].to(torch.float64), dim=-1)
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

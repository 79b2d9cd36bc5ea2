"""One left-padded forward pass of the ``hf/`` engine, with reused prefix keys/values.

Layout: a row is ``[pad][cached prefix][pad][new tokens]``. The prefix
positions come from a :class:`._hf_cache.CacheEntry`, the new tokens are
computed, the attention mask hides the pads and ``position_ids`` count real
tokens only, so every row sees exactly the positions and keys it would see
alone. Only the last position's logits are computed (``logits_to_keep=1``
where the model has it); they are turned into float64 log-probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._hf_cache import CacheEntry
from ._hf_load import LoadedModel, cache_layers, make_cache

__all__ = ["Prefill", "Row", "forward_rows", "last_logprobs", "plain_layout", "row_states"]

IntArray = npt.NDArray[np.int64]
Row = tuple[IntArray, CacheEntry | None, int]
"""A prompt's token ids, the cached entry it reuses (or None) and how many positions of it."""


@dataclass
class Prefill:
    """A pass over ``rows``: next-token log-probs and the state to continue decoding."""

    rows: list[Row]
    logprobs: Any  # [rows, vocab] float64
    cache: Any
    mask: Any  # [rows, past + new] long
    next_pos: Any  # [rows] long

    @property
    def past(self) -> int:
        """Width of the reused-prefix block (the longest reuse of the pass)."""
        return max(reuse for _, _, reuse in self.rows)

    @property
    def fresh_positions(self) -> int:
        """Real positions this pass computed (pads excluded)."""
        return sum(int(ids.size) - reuse for ids, _, reuse in self.rows)


def _past_layers(rows: Sequence[Row], past: int) -> list[tuple[Any, Any]]:
    """Per layer, the reused keys/values of every row right-aligned in a ``past`` block.

    Rows reusing the same entry for the same length are filled in one copy.
    """
    n = len(rows)
    groups: dict[tuple[int, int], list[int]] = {}
    entries: dict[int, CacheEntry] = {}
    for b, (_, entry, reuse) in enumerate(rows):
        if reuse and entry is not None:
            groups.setdefault((id(entry), reuse), []).append(b)
            entries[id(entry)] = entry
    ref = next(iter(entries.values()))
    if len(groups) == 1 and sum(map(len, groups.values())) == n:
        (((only, _), _),) = groups.items()
        return [
            (k[:, :, :past].expand(n, -1, -1, -1), v[:, :, :past].expand(n, -1, -1, -1))
            for k, v in entries[only].layers
        ]
    out: list[tuple[Any, Any]] = []
    for index, (k_ref, v_ref) in enumerate(ref.layers):
        keys = k_ref.new_zeros((n, k_ref.shape[1], past, k_ref.shape[3]))
        values = v_ref.new_zeros((n, v_ref.shape[1], past, v_ref.shape[3]))
        for (entry_id, reuse), members in groups.items():
            k, v = entries[entry_id].layers[index]
            if len(members) == 1:
                keys[members[0], :, past - reuse :] = k[0, :, :reuse]
                values[members[0], :, past - reuse :] = v[0, :, :reuse]
            else:
                keys[members, :, past - reuse :] = k[0, :, :reuse]
                values[members, :, past - reuse :] = v[0, :, :reuse]
        out.append((keys, values))
    return out


def last_logprobs(
    loaded: LoadedModel, input_ids: Any, mask: Any, positions: Any, cache: Any
) -> Any:
    """One forward of ``input_ids`` (``[rows, new]``) after ``cache``; float64 log-probabilities
    of the next token at the last position, ``[rows, vocab]`` (only that position's logits are
    computed where the model allows it). ``cache`` is extended in place."""
    import torch

    kwargs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": mask,
        "position_ids": positions,
        "use_cache": True,
        loaded.cache_arg: cache,
    }
    if loaded.logits_arg is not None:
        kwargs[loaded.logits_arg] = 1
    out = loaded.model(**kwargs)
    return torch.log_softmax(out.logits[:, -1, :].to(torch.float64), dim=-1)


def forward_rows(loaded: LoadedModel, rows: Sequence[Row], pad_id: int) -> Prefill:
    """One left-padded forward pass of ``rows``; returns the last position's log-probs."""
    import torch

    n = len(rows)
    past = max(reuse for _, _, reuse in rows)
    new = max(ids.size - reuse for ids, _, reuse in rows)
    input_ids = torch.full((n, new), pad_id, dtype=torch.long)
    mask = torch.zeros((n, past + new), dtype=torch.long)
    pos = torch.zeros((n, new), dtype=torch.long)
    for b, (ids, _, reuse) in enumerate(rows):
        fresh = ids.size - reuse
        input_ids[b, new - fresh :] = torch.from_numpy(ids[reuse:].copy())
        mask[b, past - reuse : past] = 1
        mask[b, past + new - fresh :] = 1
        pos[b, new - fresh :] = torch.arange(reuse, ids.size)
    cache = make_cache(loaded, _past_layers(rows, past) if past else [])
    device = loaded.device
    logprobs = last_logprobs(loaded, input_ids.to(device), mask.to(device), pos.to(device), cache)
    return Prefill(
        rows=list(rows),
        logprobs=logprobs,
        cache=cache,
        mask=mask.to(device),
        next_pos=torch.as_tensor([int(ids.size) for ids, _, _ in rows], device=device),
    )


def row_states(prefill: Prefill, b: int) -> list[tuple[Any, Any]]:
    """Per-layer keys/values of row ``b``'s real tokens, ``[1, heads, len, dim]`` (copies)."""
    import torch

    ids, _, reuse = prefill.rows[b]
    fresh = ids.size - reuse
    total = int(prefill.mask.shape[1])
    past = prefill.past
    out = []
    for keys, values in cache_layers(prefill.cache):
        out.append(
            (
                torch.cat(
                    [keys[b : b + 1, :, past - reuse : past], keys[b : b + 1, :, total - fresh :]],
                    dim=2,
                ),
                torch.cat(
                    [
                        values[b : b + 1, :, past - reuse : past],
                        values[b : b + 1, :, total - fresh :],
                    ],
                    dim=2,
                ),
            )
        )
    return out


def plain_layout(prefill: Prefill) -> bool:
    """The cache holds one plain key/value tensor per layer covering every position."""
    try:
        layers = cache_layers(prefill.cache)
    except TypeError:
        return False
    total = int(prefill.mask.shape[1])
    return bool(layers) and all(
        k is not None and k.dim() == 4 and k.shape[2] == total for k, _ in layers
    )

"""Final-token hidden states of persona prompts, at every layer of a local HuggingFace model.

Prompt conventions (``item``):

* ``None`` (default): the persona text alone is the one user message.
* an item id: the exact persona-mode prompt of that item (the instrument's
  persona template filled with the persona and the item; no logprob suffix),
  as the ``run`` command sends it.

Either is rendered with the model's chat template and the generation prompt
(:func:`persona_collapse.backends.local.chat_prompt_ids`), so the final
token is where the model starts its answer. Prompts are left-padded into
batches with ``position_ids`` counting real tokens, so a batched state equals
the state of the prompt run alone (up to float rounding).

Layers: index 0 is the embedding output, index ``L`` the last block's output
(after the final norm, as transformers reports ``hidden_states[-1]``), so a
model with ``L`` blocks gives ``L + 1`` layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError
from ..instruments import Instrument

__all__ = ["final_token_states", "persona_messages"]

FloatArray = npt.NDArray[np.float64]


def persona_messages(
    instrument: Instrument, personas: Sequence[str], item: int | None = None
) -> list[list[dict[str, str]]]:
    """The one-message chat of each persona (see the module docs for ``item``)."""
    if item is not None and int(item) not in set(instrument.item_ids.tolist()):
        raise ConfigError(f"--item {item} is not an item of {instrument.name}")
    return [
        [
            {
                "role": "user",
                "content": p if item is None else instrument.persona_prompt(int(item), p),
            }
        ]
        for p in personas
    ]


def final_token_states(
    loaded: Any, conversations: Sequence[Sequence[dict[str, str]]], *, batch_size: int = 8
) -> FloatArray:
    """Hidden state of each conversation's last prompt token: ``(layers + 1, n, hidden)``, float64.

    ``loaded`` is a :class:`persona_collapse.backends.local.LoadedModel`.
    """
    import torch

    from ..backends.local import chat_prompt_ids

    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    tokenizer = loaded.tokenizer
    pad = int(tokenizer.pad_token_id)
    prompts = [chat_prompt_ids(tokenizer, c) for c in conversations]
    chunks: list[FloatArray] = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size]
            width = max(len(p) for p in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for b, p in enumerate(batch):
                ids[b, width - len(p) :] = torch.as_tensor(p, dtype=torch.long)
                mask[b, width - len(p) :] = 1
            pos = (mask.cumsum(dim=1) - 1).clamp(min=0)
            out = loaded.model(
                input_ids=ids.to(loaded.device),
                attention_mask=mask.to(loaded.device),
                position_ids=pos.to(loaded.device),
                output_hidden_states=True,
                use_cache=False,
            )
            states = torch.stack([h[:, -1, :] for h in out.hidden_states], dim=0)
            chunks.append(states.to(torch.float64).cpu().numpy())
    return np.concatenate(chunks, axis=1)

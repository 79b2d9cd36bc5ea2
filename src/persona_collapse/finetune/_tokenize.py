"""Turning a chat into training tokens with the loss on assistant turns only.

The model's own chat template decides the tokens. For every assistant turn
``i`` the template is rendered twice: the chat before it with the generation
prompt (``messages[:i]``, ``add_generation_prompt=True``) and the chat up to
and including it (``messages[:i + 1]``). The tokens between the two lengths
are that turn's answer (with whatever end-of-turn tokens the template adds)
and get weight 1; everything else (system and user turns, role headers) gets
weight 0. The whole chat is the last rendering. This needs a template whose
renderings of a chat's prefixes are token prefixes of the full chat, which
common templates are; one that is not is reported as a DataError.

Sequences longer than ``max_length`` are cut at the end; a chat with no
weighted token left after the cut is skipped (counted by the caller).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DataError
from ._data import ChatDataset

__all__ = ["EncodedChat", "encode_chat", "encode_dataset", "shifted"]


@dataclass(frozen=True)
class EncodedChat:
    """Token ids of one chat and a 0/1 weight per token (1 = an assistant token to learn)."""

    input_ids: list[int]
    weights: list[float]
    line: int = 0
    truncated: bool = False

    @property
    def n_trained(self) -> int:
        """Tokens with weight 1."""
        return int(sum(self.weights))


def _render(tokenizer: Any, messages: Sequence[dict[str, str]], generation: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(
        list(messages), tokenize=True, add_generation_prompt=generation
    )
    if hasattr(ids, "keys") and "input_ids" in ids:  # BatchEncoding (transformers >= 5)
        ids = ids["input_ids"]
    if ids and isinstance(ids[0], list):
        ids = ids[0]
    return [int(i) for i in ids]


def encode_chat(
    tokenizer: Any, messages: Sequence[dict[str, str]], *, max_length: int, line: int = 0
) -> EncodedChat:
    """Token ids and assistant-only weights of ``messages`` (see the module docs)."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise DataError(
            "the tokenizer has no chat template, so assistant turns cannot be located; "
            "use an instruction-tuned model (or set tokenizer.chat_template)"
        )
    full = _render(tokenizer, messages, False)
    weights = [0.0] * len(full)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], True) if i else []
        through = _render(tokenizer, messages[: i + 1], False)
        if full[: len(through)] != through or through[: len(before)] != before:
            raise DataError(
                f"line {line}: the chat template does not render this chat's turns as a "
                "prefix of the whole chat, so the assistant tokens cannot be masked reliably"
            )
        for k in range(len(before), len(through)):
            weights[k] = 1.0
    truncated = len(full) > max_length
    if truncated:
        full, weights = full[:max_length], weights[:max_length]
    return EncodedChat(full, weights, line, truncated)


def shifted(chat: EncodedChat) -> tuple[list[int], list[int], list[float]]:
    """(inputs, targets, weights) for next-token prediction: token ``k+1`` predicted at ``k``."""
    return chat.input_ids[:-1], chat.input_ids[1:], chat.weights[1:]


def encode_dataset(
    tokenizer: Any, data: ChatDataset, max_length: int
) -> tuple[list[EncodedChat], int, int]:
    """(chats with an assistant token left, in file order; chats skipped for having none
    within ``max_length`` tokens; chats truncated). No chat left is a DataError."""
    kept: list[EncodedChat] = []
    skipped = truncated = 0
    for example in data:
        try:
            chat = encode_chat(
                tokenizer, example.messages, max_length=max_length, line=example.line
            )
        except DataError as exc:
            raise DataError(f"{data.path} {exc.message}") from None
        truncated += chat.truncated
        if sum(chat.weights[1:]) == 0:
            skipped += 1
            continue
        kept.append(chat)
    if not kept:
        raise DataError(
            f"{data.path}: no chat has an assistant token within --max-length {max_length}"
        )
    return kept, skipped, truncated

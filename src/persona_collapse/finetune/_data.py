"""Chat fine-tuning data: JSONL files of ``{"messages": [...]}``, validated line by line.

Each non-blank line is one JSON object with a ``messages`` list; every
message is an object with a ``role`` (``system``, ``developer``, ``user`` or
``assistant``) and a string ``content``; at least one message is an
``assistant`` turn (the turns the loss is computed on). Extra keys are kept
for providers that use them (OpenAI's per-message ``weight``) and otherwise
ignored. Every problem is reported with its 1-based line number, as one
:class:`~persona_collapse.errors.DataError` line naming the fix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

__all__ = ["ROLES", "ChatDataset", "ChatExample", "load_chat_jsonl", "validate_chat_line"]

ROLES = ("system", "developer", "user", "assistant")
"""Roles a training chat may hold."""


@dataclass(frozen=True)
class ChatExample:
    """One training chat: its messages (role, content) and the 1-based line it came from."""

    messages: tuple[dict[str, str], ...]
    line: int

    @property
    def n_assistant(self) -> int:
        return sum(m["role"] == "assistant" for m in self.messages)


@dataclass(frozen=True)
class ChatDataset:
    """A validated chat JSONL file: examples in file order, its path, size and sha256."""

    examples: tuple[ChatExample, ...]
    path: Path
    sha256: str
    n_bytes: int

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[ChatExample]:
        return iter(self.examples)

    def describe(self) -> str:
        return f"{self.path.name} ({len(self)} chats, sha256 {self.sha256[:12]}...)"


def _fail(path: Path | str, line: int, problem: str) -> DataError:
    return DataError(
        f"{path} line {line}: {problem}; each line must be "
        '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'
    )


def validate_chat_line(text: str, line: int, path: Path | str = "<data>") -> ChatExample:
    """One JSONL line as a :class:`ChatExample`, or a DataError naming ``path`` and ``line``."""
    try:
        record: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, line, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise _fail(path, line, f"a JSON {type(record).__name__}, not an object")
    if "messages" not in record:
        raise _fail(path, line, "no 'messages' key")
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise _fail(path, line, "'messages' is not a non-empty list")
    clean: list[dict[str, str]] = []
    for index, message in enumerate(messages, start=1):
        where = f"message {index}"
        if not isinstance(message, dict):
            raise _fail(path, line, f"{where} is not an object")
        role = message.get("role")
        if role not in ROLES:
            raise _fail(path, line, f"{where} has role {role!r}; use one of {', '.join(ROLES)}")
        content = message.get("content")
        if not isinstance(content, str):
            kind = "missing" if content is None else f"a {type(content).__name__}"
            raise _fail(path, line, f"{where} ({role}) has content that is {kind}, not a string")
        clean.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in clean):
        raise _fail(path, line, "no assistant turn (nothing to train on)")
    return ChatExample(tuple(clean), line)


def load_chat_jsonl(path: str | Path) -> ChatDataset:
    """Read and validate a chat JSONL file (blank lines are skipped).

    Raises :class:`DataError` for a missing or unreadable file, an empty one,
    and for the first bad line (with its number).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"training data {p} does not exist; pass --data FILE.jsonl")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _fail(p, line, "not UTF-8 text") from None
    examples = [
        validate_chat_line(body, number, p)
        for number, body in enumerate(text.split("\n"), start=1)
        if body.strip()
    ]
    if not examples:
        raise DataError(f"training data {p} holds no chats; pass a JSONL file with one per line")
    return ChatDataset(tuple(examples), p, hashlib.sha256(raw).hexdigest(), len(raw))

"""Custom ids of batch requests, and one batch's result lines checked against what it sent.

A custom id ``p{persona}i{item}r{repetition}a{attempt}_{nonce}`` names one
request of one batch: the slot, its protocol attempt, and a nonce of
:data:`NONCE_HEX` random hex digits drawn for each round (so at most 36 + 13
characters, within Anthropic's ``[A-Za-z0-9_-]{1,64}``). The ledger keeps the
ids each batch was sent with (``BatchJob.custom_ids``); a result line counts
only when it names one of them, exactly. Another store's or another run's
batch (even one asking the same grid, whose ids would otherwise be the same)
carries another nonce, so none of its lines can be taken for this run's, and a
line for an attempt that was never sent (a later ``a`` suffix) names no id of
the batch. Ids without a nonce (stores written before it) still parse.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from ..backends import BatchItem
from ._plan import Slot

SlotKey = tuple[int, int, int]
NONCE_HEX = 12
"""Hex digits of the random nonce that ends every custom id of one round (48 bits)."""

_CUSTOM_ID = re.compile(r"^p(-?\d+)i(\d+)r(\d+)a(\d+)(?:_([0-9a-f]+))?$")


def new_nonce() -> str:
    """A fresh random nonce (:data:`NONCE_HEX` lowercase hex digits)."""
    return secrets.token_hex(NONCE_HEX // 2)


def custom_id(slot: Slot, attempt: int, nonce: str = "") -> str:
    """``p{persona}i{item}r{repetition}a{attempt}_{nonce}`` (no ``_nonce`` when ``nonce`` is '')."""
    base = f"p{slot.persona_id}i{slot.item_id}r{slot.repetition}a{attempt}"
    return f"{base}_{nonce}" if nonce else base


def parse_custom_id(text: str) -> tuple[SlotKey, int] | None:
    """``((persona, item, repetition), attempt)`` of a custom id; None if it is not one."""
    m = _CUSTOM_ID.match(text)
    if m is None:
        return None
    return (int(m[1]), int(m[2]), int(m[3])), int(m[4])


def has_nonce(text: str) -> bool:
    """Whether custom id ``text`` carries a nonce (ids written before nonces do not)."""
    m = _CUSTOM_ID.match(text)
    return m is not None and m[5] is not None


@dataclass
class SortedLines:
    """One batch's result lines by the custom id they name.

    ``lines``: every id the batch was sent with -> its lines in file order
    (empty: no line came back for it); ``foreign``: lines naming no id of the
    batch (another batch's, an attempt never sent, or no readable id at all).
    """

    lines: dict[str, list[BatchItem]] = field(default_factory=dict)
    foreign: int = 0


def sort_lines(sent: Sequence[str], items: Iterable[BatchItem]) -> SortedLines:
    """``items`` sorted by the ids in ``sent`` (the batch's own custom ids)."""
    out = SortedLines({cid: [] for cid in sent})
    for item in items:
        found = out.lines.get(item.custom_id)
        if found is None:
            out.foreign += 1
        else:
            found.append(item)
    return out


def _same_line(a: BatchItem, b: BatchItem) -> bool:
    def text(item: BatchItem) -> str:
        return json.dumps([item.status, item.body], sort_keys=True, default=str)

    return text(a) == text(b)


def agreeing(lines: Sequence[BatchItem], verdict: Callable[[BatchItem], Hashable]) -> bool:
    """Whether the lines of one request say the same thing.

    Identical lines agree; otherwise ``verdict`` (what the driver would make of a
    line: its answer text and logprobs, or the kind of its error) must be equal
    for all of them. An unreadable line never agrees with a readable one.
    """
    first = lines[0]
    if all(_same_line(first, other) for other in lines[1:]):
        return True
    verdicts = {verdict(item) for item in lines}
    return len(verdicts) == 1

"""What the store holds: one :class:`RunInfo` per run, one :class:`ResponseRow` per slot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._version import __version__

METHODS = ("sample", "logprobs")
"""``sample``: one rating per request; ``logprobs``: a probability per scale value."""

MODES = ("persona", "self")
"""``persona``: persona role-play; ``self``: the item prompt alone (persona_id -1)."""


@dataclass
class RunInfo:
    """One run: a model (variant) answering one instrument under one protocol.

    ``settings`` holds the decoding settings and anything else that must stay
    fixed while a run is resumed (stored as JSON, so JSON-compatible values
    only). ``created`` is ISO-8601 UTC (``2026-01-31T12:00:00+00:00``), filled
    by :meth:`ResponseStore.create_run` when empty. ``has_failures`` says
    whether the published CSV had a ``failures`` column, so an export writes
    the same header back.
    """

    run_id: str
    model: str
    backend: str
    variant: str = ""
    family: str = ""
    method: str = "sample"
    mode: str = "persona"
    instrument: str = "mfq30"
    settings: dict[str, Any] = field(default_factory=dict)
    protocol_hash: str = ""
    persona_set_hash: str = ""
    tool_version: str = __version__
    created: str = ""
    source: str = ""
    has_failures: bool = True


@dataclass
class ResponseRow:
    """The answer to one slot (persona, item, repetition).

    ``persona_id`` is the 0-based persona index (-1 in self mode);
    ``repetition`` is the published 1-based ``run_index``; ``rating`` is a scale
    value or -1 when missing; ``failures`` counts failed attempts before the
    accepted answer. Logprob runs put the probability of each scale value (in
    scale order, summing to 1) in ``distribution``. ``latency_ms`` is the wall
    time of the accepted request in milliseconds; ``collected_at`` is ISO-8601,
    kept exactly as written.
    """

    persona_id: int
    item_id: int
    repetition: int
    rating: int
    failures: int | None = None
    raw_text: str | None = None
    distribution: list[float] | None = None
    collected_at: str = ""
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    extra: dict[str, Any] | None = None

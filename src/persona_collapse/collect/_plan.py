"""The grid of slots a run must fill, minus the slots already stored.

A slot is one independent request of the published protocol (PROTOCOL.md
section 2): ``(persona_id, item_id, repetition)``. Persona mode asks every
persona every item ``reps`` times; self mode (``--self``) uses
``persona_id = -1``. A logprob run reads a whole distribution from one
request, so it plans one slot per (persona, item) with repetition 1.
:class:`Slot` itself is defined in ``protocol`` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from ..protocol import SELF_PERSONA_ID, Slot

__all__ = ["SELF_PERSONA_ID", "Slot", "plan_slots", "slot_grid"]


def slot_grid(
    item_ids: Iterable[int],
    persona_ids: Sequence[int] | None,
    reps: int,
    *,
    method: str = "sample",
) -> list[Slot]:
    """Every slot of a run, persona-major, then item, then repetition.

    ``persona_ids=None`` is self mode. ``method="logprobs"`` ignores ``reps``
    (one request per cell, repetition 1).
    """
    if method not in ("sample", "logprobs"):
        raise ValueError(f"unknown method {method!r}")
    n_reps = 1 if method == "logprobs" else int(reps)
    if n_reps < 1:
        raise ValueError("reps must be at least 1")
    items = [int(i) for i in item_ids]
    personas = [SELF_PERSONA_ID] if persona_ids is None else [int(p) for p in persona_ids]
    return [Slot(p, i, r) for p in personas for i in items for r in range(1, n_reps + 1)]


def plan_slots(
    item_ids: Iterable[int],
    persona_ids: Sequence[int] | None,
    reps: int,
    *,
    method: str = "sample",
    done: Collection[tuple[int, int, int]] = (),
) -> list[Slot]:
    """The slots still to ask: :func:`slot_grid` minus ``done`` (``store.completed_slots``).

    Stored slots whose rating is missing (-1) count as done: the protocol
    already gave up on them.
    """
    finished = set(done)
    return [
        s for s in slot_grid(item_ids, persona_ids, reps, method=method) if s.key not in finished
    ]

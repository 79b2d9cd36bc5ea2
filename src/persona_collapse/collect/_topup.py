"""Resuming and topping up a stored run: is the stored record the same run, and did it grow?

A resumed run must describe the same protocol, instrument, model and personas
as its stored record; a top-up (more repetitions, or more personas with the
same first N) is no difference: the record grows and only the new slots are
asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..personas import PersonaSet
from ..store import ResponseStore, RunInfo
from ._record import grown_record, run_growth, run_mismatch


def persona_prefix_hash(personas: PersonaSet | None, stored: RunInfo) -> str | None:
    """The persona-set hash of the first stored-count personas of ``personas`` (a top-up check).

    None when there are no personas or fewer than the stored run holds.
    """
    old_n = stored.settings.get("n_personas")
    if personas is None or not isinstance(old_n, int) or not 0 < old_n <= len(personas):
        return None
    return PersonaSet(personas.texts[:old_n], personas.ids[:old_n], personas.source).content_hash


def growth_note(growth: dict[str, tuple[int, int]], new_slots: int) -> str:
    """The summary's sentence on a top-up: what grew, and how many new slots were asked."""
    what = {"reps": "repetitions", "n_personas": "personas"}
    parts = [f"{what[k]} {old} -> {new}" for k, (old, new) in growth.items()]
    return f"Topped up ({', '.join(parts)}): {new_slots} new slots asked."


@dataclass
class Resume:
    """What the store holds of a run: its stored record (None: a new run), the growth
    of a top-up (setting -> (stored, new); empty: none) and the record to write."""

    record: RunInfo
    existing: RunInfo | None = None
    growth: dict[str, tuple[int, int]] = field(default_factory=dict)


def check_resume(store: ResponseStore, record: RunInfo, personas: PersonaSet | None) -> Resume:
    """Compare ``record`` with the stored run of its id; raise :class:`ConfigError` (the
    difference, one line) when a resume would mix two different runs."""
    existing = store.get_run(record.run_id)
    if existing is None:
        return Resume(record)
    mismatch = run_mismatch(
        existing, record, persona_prefix_hash=persona_prefix_hash(personas, existing)
    )
    if mismatch is not None:
        raise ConfigError(mismatch)
    growth = run_growth(existing, record)  # a top-up: more reps or personas
    grown = grown_record(existing, record)
    if not growth:
        store.ensure_run(grown)  # the store's own check (creates nothing here)
    return Resume(grown, existing, growth)


def write_record(store: ResponseStore, resume: Resume) -> RunInfo:
    """Store the run record (new, or unchanged on a plain resume); a top-up's record grows
    later, under the lease (:func:`grow_record`)."""
    return resume.record if resume.growth else store.ensure_run(resume.record)


def grow_record(store: ResponseStore, resume: Resume, run: RunInfo) -> RunInfo:
    """The record a top-up grows to (``run`` unchanged when nothing grew)."""
    if resume.growth and resume.existing is not None:
        return store.grow_run(resume.record, before=resume.existing)
    return run

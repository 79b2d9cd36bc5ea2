"""Variants as first-class records: which model is which (family, variant) in a store.

A fine-tuning run records its result in the store file's ``variant_models``
table (declared by the store's schema, beside ``runs`` and ``responses``): family
(e.g. ``GPT-4o``), variant label (``base``, ``insecure``, ``secure``, ...),
the model name to pass to ``run``/``verify`` (``openai/ft:gpt-4o-...``,
``hf//path/OUT``, ``tinker/tinker://...``), the base model, the provider's job
id, the training data hash and recipe, and the job status.

:func:`family_runs` groups the store's questionnaire runs (``runs`` table)
by family and variant, for ``report``/``compare`` to take a whole family.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..protocol import BASE
from ..store import TABLE_COLUMNS, ResponseStore, RunInfo, VariantModels, now_utc

__all__ = [
    "VariantRecord",
    "family_runs",
    "get_variant",
    "list_variants",
    "record_variant",
]

_COLUMNS = TABLE_COLUMNS["variant_models"]


@dataclass
class VariantRecord:
    """One (family, variant): the model to ask and where it came from.

    ``model`` is empty while a provider job is still running; ``recipe`` holds
    the hyperparameters sent (JSON-compatible values).
    """

    family: str
    variant: str
    model: str = ""
    base_model: str = ""
    provider: str = ""
    job_id: str = ""
    status: str = ""
    data_sha256: str = ""
    recipe: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    updated: str = ""


@contextmanager
def _table(path: str | Path) -> Iterator[VariantModels]:
    """The store file's ``variant_models`` (validated, created if missing, schema up to date)."""
    with ResponseStore(path) as store:
        yield VariantModels(store)


def _check_labels(family: str, variant: str) -> None:
    if not family.strip() or not variant.strip():
        raise DataError("a variant needs both --family and --variant (e.g. GPT-4o and insecure)")


def record_variant(path: str | Path, record: VariantRecord) -> VariantRecord:
    """Insert or update ``record`` (keyed by family and variant); returns it as stored.

    Empty fields of an update keep their stored values, so a status update
    does not erase the model name, and vice versa.
    """
    _check_labels(record.family, record.variant)
    now = now_utc()
    with _table(path) as table:
        values = table.get(record.family, record.variant) or {}
        merged = {
            "family": record.family,
            "variant": record.variant,
            "model": record.model or values.get("model", ""),
            "base_model": record.base_model or values.get("base_model", ""),
            "provider": record.provider or values.get("provider", ""),
            "job_id": record.job_id or values.get("job_id", ""),
            "status": record.status or values.get("status", ""),
            "data_sha256": record.data_sha256 or values.get("data_sha256", ""),
            "recipe": json.dumps(record.recipe, sort_keys=True)
            if record.recipe
            else values.get("recipe", "{}"),
            "created": values.get("created") or record.created or now,
            "updated": now,
        }
        table.put(merged)
    stored = get_variant(path, record.family, record.variant)
    assert stored is not None
    return stored


def _from_row(row: dict[str, Any]) -> VariantRecord:
    values = {c: row[c] for c in _COLUMNS}
    values["recipe"] = json.loads(values["recipe"] or "{}")
    return VariantRecord(**values)


def get_variant(path: str | Path, family: str, variant: str) -> VariantRecord | None:
    """The record of (family, variant), or None."""
    with _table(path) as table:
        row = table.get(family, variant)
    return None if row is None else _from_row(row)


def list_variants(path: str | Path, family: str | None = None) -> list[VariantRecord]:
    """Recorded variants (of one family, or all), by family then creation time."""
    with _table(path) as table:
        rows = table.rows(family)
    return [_from_row(r) for r in rows]


def family_runs(
    store: ResponseStore | str | Path, family: str, *, mode: str = "persona"
) -> dict[str, str]:
    """``{variant: run_id}`` of the questionnaire runs of ``family`` (``mode`` runs only).

    Runs are matched by their recorded family; a run without one matches when
    its model is a variant model recorded for the family in ``variant_models``
    (its variant label then comes from that record when the run has none).
    When one variant has several runs, the newest wins. Variants are ordered
    ``base`` first, then by the creation time of the run chosen for each. Raises DataError if the family
    has no runs, listing the families present.
    """
    path = store.path if isinstance(store, ResponseStore) else Path(store)
    by_model = {r.model: r for r in list_variants(path, family) if r.model}
    if isinstance(store, ResponseStore):
        runs: list[RunInfo] = store.list_runs()
    else:
        with ResponseStore(path, create=False) as opened:
            runs = opened.list_runs()
    found: dict[str, str] = {}
    for run in runs:  # oldest first, so a newer run replaces an older one
        if run.mode != mode:
            continue
        record = by_model.get(run.model)
        if run.family == family or (not run.family and record is not None):
            label = run.variant or (record.variant if record else "") or BASE
            found.pop(label, None)
            found[label] = run.run_id
    if not found:
        families = sorted({r.family for r in runs if r.family})
        known = (
            f"families in the store: {', '.join(families)}" if families else "no run has a family"
        )
        raise DataError(
            f"store {path} has no {mode}-mode runs of family {family!r} ({known}); "
            "label runs with run --family F --variant L"
        )
    ordered = dict.fromkeys([BASE] if BASE in found else [])
    ordered.update(dict.fromkeys(k for k in found if k != BASE))
    return {k: found[k] for k in ordered}

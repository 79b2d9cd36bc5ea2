"""The ``variant_models`` table (filled by ``finetune``): rows as stored, keyed by (family, variant).

Values are the table's columns (:data:`VARIANT_COLUMNS`); ``recipe`` is JSON
text and the times are ISO-8601 UTC strings, as written by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._schema import VARIANT_COLUMNS, insert_sql

if TYPE_CHECKING:
    from ._sqlite import ResponseStore

__all__ = ["VariantModels"]

_SELECT = f"SELECT {', '.join(VARIANT_COLUMNS)} FROM variant_models"
_REPLACE = insert_sql("variant_models", VARIANT_COLUMNS, "REPLACE")


class VariantModels:
    """The ``variant_models`` rows of an open :class:`ResponseStore` (its connection and lock)."""

    def __init__(self, store: ResponseStore) -> None:
        self._store = store

    def get(self, family: str, variant: str) -> dict[str, Any] | None:
        """The row of (family, variant) by column name, or None."""
        with self._store.connection() as conn:
            row = conn.execute(
                _SELECT + " WHERE family = ? AND variant = ?", (family, variant)
            ).fetchone()
        return None if row is None else dict(zip(VARIANT_COLUMNS, row, strict=True))

    def put(self, values: Mapping[str, Any]) -> None:
        """Insert or replace the row of ``values["family"]``, ``values["variant"]`` (committed)."""
        with self._store.connection() as conn:
            conn.execute(_REPLACE, tuple(values[c] for c in VARIANT_COLUMNS))

    def rows(self, family: str | None = None) -> list[dict[str, Any]]:
        """Rows (of one family, or all), by family, then creation time, then variant."""
        sql = _SELECT
        params: tuple[Any, ...] = ()
        if family is not None:
            sql += " WHERE family = ?"
            params = (family,)
        rows = self._store.select(sql + " ORDER BY family, created, variant", params)
        return [dict(zip(VARIANT_COLUMNS, r, strict=True)) for r in rows]

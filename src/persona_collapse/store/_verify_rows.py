"""The ``verify`` tables' rows (``verify_runs``, ``verify_answers``, ``verify_judgments``).

Rows are plain tuples in table order (:data:`VERIFY_RUN_COLUMNS`,
:data:`VERIFY_ANSWER_COLUMNS`, :data:`VERIFY_JUDGMENT_COLUMNS`); ``verify``
turns them into its records. Each write commits at once; a slot already
stored is never written twice (``INSERT OR IGNORE`` on the table's key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._schema import (
    VERIFY_ANSWER_COLUMNS,
    VERIFY_JUDGMENT_COLUMNS,
    VERIFY_RUN_COLUMNS,
    insert_sql,
)

if TYPE_CHECKING:
    from ._sqlite import ResponseStore

__all__ = ["VerifyRows"]


def _select_run(table: str, columns: Sequence[str], order: str = "") -> str:
    """The rows of one run (``run_id = ?``) without ``run_id``, ``columns``' first; by ``order``
    (SQL; stored order where empty)."""
    sql = f"SELECT {', '.join(columns[1:])} FROM {table} WHERE run_id = ?"
    return f"{sql} ORDER BY {order}" if order else sql


_INSERT_ANSWER = insert_sql("verify_answers", VERIFY_ANSWER_COLUMNS, "IGNORE")
_INSERT_JUDGMENT = insert_sql("verify_judgments", VERIFY_JUDGMENT_COLUMNS, "IGNORE")
_SELECT_ANSWERS = _select_run("verify_answers", VERIFY_ANSWER_COLUMNS, "question_id, sample")
_SELECT_JUDGMENTS = _select_run("verify_judgments", VERIFY_JUDGMENT_COLUMNS)
_FILL_LABELS = (
    "UPDATE verify_runs SET family = CASE WHEN family = '' THEN ? ELSE family END, "
    "variant = CASE WHEN variant = '' THEN ? ELSE variant END WHERE run_id = ?"
)


class VerifyRows:
    """The verification rows of an open :class:`ResponseStore` (its connection and lock)."""

    def __init__(self, store: ResponseStore) -> None:
        self._store = store

    def ensure_run(self, values: Sequence[Any]) -> tuple[Any, ...]:
        """Insert a ``verify_runs`` row unless its run id exists; the stored row."""
        return self._store.ensure_record("verify_runs", VERIFY_RUN_COLUMNS, values)

    def run(self, run_id: str) -> tuple[Any, ...] | None:
        """The ``verify_runs`` row of ``run_id``, or None."""
        with self._store.connection() as conn:
            row = conn.execute(
                f"SELECT {', '.join(VERIFY_RUN_COLUMNS)} FROM verify_runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        return None if row is None else tuple(row)

    def run_ids(self) -> list[str]:
        """Every verification run id, oldest first."""
        with self._store.connection() as conn:
            return [r[0] for r in conn.execute("SELECT run_id FROM verify_runs ORDER BY created")]

    def fill_labels(self, run_id: str, family: str, variant: str) -> None:
        """Set the family and variant of ``run_id`` where they are still empty."""
        with self._store.connection() as conn:
            conn.execute(_FILL_LABELS, (family, variant, run_id))

    def add_answer(self, values: Sequence[Any]) -> bool:
        """Insert one ``verify_answers`` row; False if that sample was already stored."""
        with self._store.connection() as conn:
            return conn.execute(_INSERT_ANSWER, tuple(values)).rowcount == 1

    def add_judgment(self, values: Sequence[Any]) -> bool:
        """Insert one ``verify_judgments`` row; False if that aspect was already judged."""
        with self._store.connection() as conn:
            return conn.execute(_INSERT_JUDGMENT, tuple(values)).rowcount == 1

    def answers(self, run_id: str) -> list[tuple[Any, ...]]:
        """``verify_answers`` rows of a run without ``run_id``, by question then sample."""
        return self._store.select(_SELECT_ANSWERS, (run_id,))

    def judgments(self, run_id: str) -> list[tuple[Any, ...]]:
        """``verify_judgments`` rows of a run without ``run_id`` (stored order)."""
        return self._store.select(_SELECT_JUDGMENTS, (run_id,))

"""The ``verify`` tables' rows (``verify_runs``, ``verify_answers``, ``verify_judgments``).

Rows are plain tuples in table order (:data:`VERIFY_RUN_COLUMNS`,
:data:`VERIFY_ANSWER_COLUMNS`, :data:`VERIFY_JUDGMENT_COLUMNS`); ``verify``
turns them into its records. Each write commits at once; a slot already
stored is never written twice (``INSERT OR IGNORE`` on the table's key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._schema import VERIFY_ANSWER_COLUMNS, VERIFY_JUDGMENT_COLUMNS, VERIFY_RUN_COLUMNS

if TYPE_CHECKING:
    from ._sqlite import ResponseStore

__all__ = ["VerifyRows"]


def _insert(table: str, columns: Sequence[str]) -> str:
    return (
        f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )


_INSERT_ANSWER = _insert("verify_answers", VERIFY_ANSWER_COLUMNS)
_INSERT_JUDGMENT = _insert("verify_judgments", VERIFY_JUDGMENT_COLUMNS)
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
        with self._store.connection() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(VERIFY_ANSWER_COLUMNS[1:])} FROM verify_answers "
                "WHERE run_id = ? ORDER BY question_id, sample",
                (run_id,),
            ).fetchall()
        return [tuple(r) for r in rows]

    def judgments(self, run_id: str) -> list[tuple[Any, ...]]:
        """``verify_judgments`` rows of a run without ``run_id`` (stored order)."""
        with self._store.connection() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(VERIFY_JUDGMENT_COLUMNS[1:])} FROM verify_judgments "
                "WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        return [tuple(r) for r in rows]

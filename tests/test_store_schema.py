"""The store's column lists are tied to its DDL, so a column added, renamed or moved in one
place cannot silently go missing in another.

``TABLE_COLUMNS`` (and the named lists it collects) must equal what SQLite
makes of ``DDL`` (``PRAGMA table_info``, in table order); every column named
literally in an ``INSERT``, ``SELECT`` or ``UPDATE`` inside ``store/`` must be a
column of its table.
"""

from __future__ import annotations

import ast
import re
import sqlite3
from pathlib import Path

import persona_collapse.store as store_package
from persona_collapse.store import TABLE_COLUMNS

STORE = Path(store_package.__file__).resolve().parent


def _ddl_columns() -> dict[str, tuple[str, ...]]:
    from persona_collapse.store._schema import DDL

    conn = sqlite3.connect(":memory:")
    try:
        for statement in DDL:
            conn.execute(statement)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: tuple(r[1] for r in conn.execute(f"PRAGMA table_info({t})").fetchall())
            for t in tables
        }
    finally:
        conn.close()


def test_table_columns_match_the_ddl() -> None:
    from persona_collapse.store._schema import STORE_TABLES

    ddl = _ddl_columns()
    assert set(ddl) == set(TABLE_COLUMNS) == set(STORE_TABLES)
    for table, columns in TABLE_COLUMNS.items():
        assert columns == ddl[table], table


def _sql_texts() -> list[tuple[str, str]]:
    """Every string literal of ``store/`` (f-string fields as ``{}``), with where it is."""
    texts = []
    for path in sorted(STORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr):
                text = "".join(
                    v.value if isinstance(v, ast.Constant) else "{}" for v in node.values
                )
            else:
                continue
            texts.append((f"{path.name}:{node.lineno}", " ".join(text.split())))
    return texts


_NAME = re.compile(r"^\w+$")


def _named(columns: str) -> list[str]:
    """The plain column names of a comma-separated list (expressions and ``{}`` skipped)."""
    return [c for c in (part.strip() for part in columns.split(",")) if _NAME.match(c)]


def test_columns_named_in_store_sql_exist() -> None:
    ddl = _ddl_columns()
    checked, unknown = 0, []
    patterns = (
        re.compile(r"INSERT (?:OR \w+ )?INTO (\w+) \(([^(){}]+)\)"),
        re.compile(r"SELECT ((?:\w+, )*\w+) FROM (\w+)(?! \w+ JOIN)"),
        re.compile(r"UPDATE (\w+) SET (.+?) WHERE"),
    )
    for where, text in _sql_texts():
        for number, pattern in enumerate(patterns):
            for match in pattern.finditer(text):
                table, columns = match.groups() if number != 1 else match.groups()[::-1]
                if table not in ddl:
                    continue
                names = re.findall(r"(\w+) = ", columns) if number == 2 else _named(columns)
                checked += len(names)
                unknown += [f"{where}: {table}.{n}" for n in names if n not in ddl[table]]
    assert not unknown, "\n".join(unknown)
    assert checked > 20  # the scan sees the store's literal statements

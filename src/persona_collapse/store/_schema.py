"""The SQLite schema of a response store (version in ``PRAGMA user_version``)."""

from __future__ import annotations

SCHEMA_VERSION = 1
"""Bumped whenever the tables below change; a store with a higher version is refused."""

SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""

RUN_TABLE_COLUMNS = (
    "run_id",
    "model",
    "backend",
    "variant",
    "family",
    "method",
    "mode",
    "instrument",
    "settings",
    "protocol_hash",
    "persona_set_hash",
    "tool_version",
    "created",
    "source",
    "has_failures",
)
"""Columns of ``runs``, one per :class:`RunInfo` field, in field order."""

RESPONSE_TABLE_COLUMNS = (
    "run_id",
    "persona_id",
    "item_id",
    "repetition",
    "rating",
    "failures",
    "raw_text",
    "distribution",
    "collected_at",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "extra",
)
"""Columns of ``responses``: ``run_id`` then one per :class:`ResponseRow` field."""

DDL = (
    """
CREATE TABLE IF NOT EXISTS runs (
    run_id           TEXT PRIMARY KEY,
    model            TEXT NOT NULL,
    backend          TEXT NOT NULL,
    variant          TEXT NOT NULL DEFAULT '',
    family           TEXT NOT NULL DEFAULT '',
    method           TEXT NOT NULL DEFAULT 'sample',
    mode             TEXT NOT NULL DEFAULT 'persona',
    instrument       TEXT NOT NULL DEFAULT 'mfq30',
    settings         TEXT NOT NULL DEFAULT '{}',   -- JSON object
    protocol_hash    TEXT NOT NULL DEFAULT '',
    persona_set_hash TEXT NOT NULL DEFAULT '',
    tool_version     TEXT NOT NULL DEFAULT '',
    created          TEXT NOT NULL,                -- ISO-8601 UTC
    source           TEXT NOT NULL DEFAULT '',
    has_failures     INTEGER NOT NULL DEFAULT 1
)""",
    """
CREATE TABLE IF NOT EXISTS responses (
    run_id            TEXT NOT NULL REFERENCES runs(run_id),
    persona_id        INTEGER NOT NULL,            -- 0-based; -1 in self mode
    item_id           INTEGER NOT NULL,
    repetition        INTEGER NOT NULL,            -- published run_index, 1-based
    rating            INTEGER NOT NULL,            -- scale value; -1 missing
    failures          INTEGER,                     -- failed attempts before the answer
    raw_text          TEXT,
    distribution      TEXT,                        -- JSON list, probability per scale value
    collected_at      TEXT NOT NULL DEFAULT '',    -- ISO-8601 as written
    latency_ms        REAL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    extra             TEXT,                        -- JSON object
    PRIMARY KEY (run_id, persona_id, item_id, repetition)
) WITHOUT ROWID""",
)
"""The statements creating the tables, executed in order in one transaction."""

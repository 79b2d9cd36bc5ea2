"""The SQLite schema of a response store (version in ``PRAGMA user_version``).

Every table of a store file is declared here, including those that other
packages fill: ``verify`` keeps its runs, answers and judgements in
``verify_runs`` / ``verify_answers`` / ``verify_judgments``; ``finetune``
records its variants in ``variant_models``. One version number covers them all.

History:

* version 1: ``runs`` and ``responses``; ``verify`` and ``finetune`` created
  their tables themselves, on first use, outside the version;
* version 2: every table created with the store (same columns as before);
  opening a version-1 store adds the tables it lacks and keeps all rows;
* version 3: ``run_leases``, the one writer of each run (see ``_lease.py``);
  opening a version-2 store adds it and keeps all rows;
* version 4: ``batch_jobs`` (provider batches of ``run --batch`` and their
  state) and ``batch_slots`` (each unstored slot's next attempt, failures and
  tokens between batch rounds, see ``_batches.py``); opening a version-3 store
  adds them and keeps all rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

SCHEMA_VERSION = 4
"""Bumped whenever the tables below change; a store with a higher version is refused."""

SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""

RUN_PROTOCOL_COLUMNS = (
    "method",
    "mode",
    "instrument",
    "settings",
    "protocol_hash",
    "persona_set_hash",
)
"""Columns of ``runs`` that say how the model was asked (method, mode, instrument, settings
and the protocol's and persona set's hashes): a resumed run must ask it the same way."""

RUN_TABLE_COLUMNS = (
    "run_id",
    "model",
    "backend",
    "variant",
    "family",
    *RUN_PROTOCOL_COLUMNS,
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

CORE_DDL = (
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
"""``runs`` and ``responses``: the questionnaire answers (version 1 held only these)."""

CORE_TABLES = frozenset({"runs", "responses"})
"""Tables every store, of any version, has."""

VERIFY_RUN_COLUMNS = (
    "run_id",
    "model",
    "judge",
    "scoring",
    "family",
    "variant",
    "settings",
    "tool_version",
    "created",
)
"""Columns of ``verify_runs`` in table order."""

VERIFY_ANSWER_COLUMNS = (
    "run_id",
    "question_id",
    "sample",
    "prompt",
    "answer",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "collected_at",
)
"""Columns of ``verify_answers`` in table order."""

VERIFY_JUDGMENT_COLUMNS = (
    "run_id",
    "question_id",
    "sample",
    "aspect",
    "label",
    "score",
    "mass",
    "raw",
    "top_logprobs",
    "collected_at",
)
"""Columns of ``verify_judgments`` in table order."""

VERIFY_DDL = (
    """
CREATE TABLE IF NOT EXISTS verify_runs (
    run_id       TEXT PRIMARY KEY,
    model        TEXT NOT NULL,
    judge        TEXT NOT NULL,
    scoring      TEXT NOT NULL,              -- text | logprobs
    family       TEXT NOT NULL DEFAULT '',
    variant      TEXT NOT NULL DEFAULT '',
    settings     TEXT NOT NULL DEFAULT '{}', -- JSON object
    tool_version TEXT NOT NULL DEFAULT '',
    created      TEXT NOT NULL               -- ISO-8601 UTC
)""",
    """
CREATE TABLE IF NOT EXISTS verify_answers (
    run_id            TEXT NOT NULL REFERENCES verify_runs(run_id),
    question_id       TEXT NOT NULL,
    sample            INTEGER NOT NULL,      -- 1-based
    prompt            TEXT NOT NULL,
    answer            TEXT NOT NULL,
    finish_reason     TEXT,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    latency_ms        REAL,
    collected_at      TEXT NOT NULL,
    PRIMARY KEY (run_id, question_id, sample)
) WITHOUT ROWID""",
    """
CREATE TABLE IF NOT EXISTS verify_judgments (
    run_id        TEXT NOT NULL REFERENCES verify_runs(run_id),
    question_id   TEXT NOT NULL,
    sample        INTEGER NOT NULL,
    aspect        TEXT NOT NULL,             -- aligned | coherent
    label         TEXT NOT NULL,             -- score | CODE | REFUSAL | unparsed | low_mass
    score         REAL,                      -- 0-100 when label = score
    mass          REAL,                      -- logprob rule: mass on integer tokens
    raw           TEXT,
    top_logprobs  TEXT,                      -- JSON [[token, logprob], ...]
    collected_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, question_id, sample, aspect)
) WITHOUT ROWID""",
)
"""The ``verify`` tables: one row per verification run, per answer, per judged aspect."""

VARIANT_COLUMNS = (
    "family",
    "variant",
    "model",
    "base_model",
    "provider",
    "job_id",
    "status",
    "data_sha256",
    "recipe",
    "created",
    "updated",
)
"""Columns of ``variant_models`` in table order."""

VARIANT_DDL = (
    """
CREATE TABLE IF NOT EXISTS variant_models (
    family       TEXT NOT NULL,
    variant      TEXT NOT NULL,
    model        TEXT NOT NULL DEFAULT '',   -- family/model name for run and verify
    base_model   TEXT NOT NULL DEFAULT '',
    provider     TEXT NOT NULL DEFAULT '',   -- openai | hf | tinker
    job_id       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT '',   -- e.g. running, succeeded, failed
    data_sha256  TEXT NOT NULL DEFAULT '',
    recipe       TEXT NOT NULL DEFAULT '{}', -- JSON object
    created      TEXT NOT NULL,
    updated      TEXT NOT NULL,
    PRIMARY KEY (family, variant)
)""",
)
"""The ``finetune`` table: which model is variant (family, variant), and how it was made."""

LEASE_COLUMNS = ("run_id", "pid", "host", "token", "since", "heartbeat")
"""Columns of ``run_leases`` in table order."""

LEASE_DDL = (
    """
CREATE TABLE IF NOT EXISTS run_leases (
    run_id    TEXT PRIMARY KEY,              -- the run being written (no foreign key:
                                             -- the lease is taken before or without a record)
    pid       INTEGER NOT NULL,              -- process id of the writer
    host      TEXT NOT NULL,                 -- host name of the writer
    token     TEXT NOT NULL,                 -- random id of this holding
    since     TEXT NOT NULL,                 -- ISO-8601 UTC, when it was taken
    heartbeat REAL NOT NULL                  -- Unix time (s) of the last heartbeat
)""",
)
"""The lease table: at most one writer per run id, refreshed by its heartbeat."""

BATCH_JOB_COLUMNS = (
    "run_id",
    "batch_id",
    "provider",
    "round",
    "state",
    "n_requests",
    "custom_ids",
    "created",
    "updated",
)
"""Columns of ``batch_jobs`` in table order."""

BATCH_SLOT_COLUMNS = (
    "run_id",
    "persona_id",
    "item_id",
    "repetition",
    "attempt",
    "failures",
    "faults",
    "prompt_tokens",
    "completion_tokens",
    "raw_text",
)
"""Columns of ``batch_slots`` in table order."""

BATCH_DDL = (
    """
CREATE TABLE IF NOT EXISTS batch_jobs (
    run_id      TEXT NOT NULL,               -- the run the batch collects for
    batch_id    TEXT NOT NULL,               -- the provider's id (batch_..., msgbatch_...)
    provider    TEXT NOT NULL,               -- model family: openai | anthropic
    round       INTEGER NOT NULL,            -- 1-based batch round of the run
    state       TEXT NOT NULL,               -- provider state; 'read' once its results are stored
    n_requests  INTEGER NOT NULL,
    custom_ids  TEXT NOT NULL,               -- JSON list of the custom ids it holds
    created     TEXT NOT NULL,               -- ISO-8601 UTC
    updated     TEXT NOT NULL,
    PRIMARY KEY (run_id, batch_id)
)""",
    """
CREATE TABLE IF NOT EXISTS batch_slots (
    run_id            TEXT NOT NULL,
    persona_id        INTEGER NOT NULL,
    item_id           INTEGER NOT NULL,
    repetition        INTEGER NOT NULL,
    attempt           INTEGER NOT NULL,      -- the next protocol attempt to ask (0-based)
    failures          INTEGER NOT NULL,      -- unparseable answers so far
    faults            INTEGER NOT NULL,      -- transport faults so far (never attempts)
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    raw_text          TEXT,                  -- the last answer's text
    PRIMARY KEY (run_id, persona_id, item_id, repetition)
) WITHOUT ROWID""",
)
"""The batch tables: in-flight provider batches (adopted on resume) and per-slot progress."""

DDL = CORE_DDL + VERIFY_DDL + VARIANT_DDL + LEASE_DDL + BATCH_DDL
"""The statements creating every table of a new store, executed in order in one transaction."""

STORE_TABLES = CORE_TABLES | {
    "verify_runs",
    "verify_answers",
    "verify_judgments",
    "variant_models",
    "run_leases",
    "batch_jobs",
    "batch_slots",
}
"""Every table of a current store."""

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: VERIFY_DDL + VARIANT_DDL,
    2: LEASE_DDL,
    3: BATCH_DDL,
}
"""Statements taking a store from version ``v`` to ``v + 1`` (``IF NOT EXISTS``: a version-1
store may already hold the tables ``verify`` or ``finetune`` created on first use)."""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": RUN_TABLE_COLUMNS,
    "responses": RESPONSE_TABLE_COLUMNS,
    "verify_runs": VERIFY_RUN_COLUMNS,
    "verify_answers": VERIFY_ANSWER_COLUMNS,
    "verify_judgments": VERIFY_JUDGMENT_COLUMNS,
    "variant_models": VARIANT_COLUMNS,
    "run_leases": LEASE_COLUMNS,
    "batch_jobs": BATCH_JOB_COLUMNS,
    "batch_slots": BATCH_SLOT_COLUMNS,
}
"""Columns of every table of the store, in table order, by table name."""


def insert_sql(table: str, columns: Sequence[str], conflict: Literal["IGNORE", "REPLACE"]) -> str:
    """``INSERT OR {conflict} INTO table (columns) VALUES (?, ...)``: one ``?`` per column.

    ``conflict``: ``IGNORE`` keeps a row already stored under the key (write once),
    ``REPLACE`` overwrites it (the latest state).
    """
    return (
        f"INSERT OR {conflict} INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )

"""The response store: SQLite runs, the published CSV format, Parquet, and SOURCE resolution.

Every answer is committed to an SQLite file as it arrives (:class:`ResponseStore`);
published-format CSV files import and export byte for byte
(:func:`read_published_csv`, :func:`write_published_csv`, :func:`import_csv`,
:func:`export_run`); :func:`load_sources` turns a command-line SOURCE into
response tables. The schema (:data:`SCHEMA_VERSION`) also declares the tables
``verify`` and ``finetune`` keep in the same file; :func:`default_run_id` is the
one rule for default run ids and :func:`now_utc` the one clock. A run has one
writer at a time: :class:`RunLease` (a heartbeat row in ``run_leases``).
:func:`load_task_sources` reads task sources (the capability control: MMLU,
GSM8K) as :class:`TaskResponses`. :func:`run_summaries` lists a store's runs with their progress and token counts.
:class:`VerifyRows` and :class:`VariantModels` read and write the tables
``verify`` and ``finetune`` keep: no SQL lives outside this package.
"""

from ..protocol import MISSING_RATING, SELF_PERSONA_ID
from ._batches import PENDING_PREFIX, PENDING_STATE, READ_STATE, BatchJob, BatchLedger
from ._clock import now_utc
from ._csv import PublishedTable, read_published_csv, write_published_csv
from ._frame import (
    PERSONA_COLUMNS,
    RESPONSE_COLUMNS,
    SELF_COLUMNS,
    complete_frame,
    published_columns,
)
from ._inspect_log import EVAL_MEMBER_MAX_BYTES
from ._lease import HEARTBEAT_S, LEASE_STALE_S, LeaseHeldError, LeaseHolder, RunLease
from ._parquet import read_parquet, write_parquet
from ._records import ResponseRow, RunInfo
from ._run_ids import check_run_id, default_run_id
from ._schema import SCHEMA_VERSION, TABLE_COLUMNS
from ._source import Responses, load_sources, responses_from_frame, task_run_ids
from ._sqlite import DEFAULT_COMPARE, DEFAULT_STORE, ResponseStore
from ._summaries import RunSummary, run_summaries
from ._task_table import (
    TASK_COLUMNS,
    TaskResponses,
    gold_key,
    load_one_task_source,
    load_task_sources,
    read_task_csv,
    task_source_kind,
)
from ._transfer import export_frame, export_run, import_csv
from ._variant_table import VariantModels
from ._verify_rows import VerifyRows

__all__ = [
    "DEFAULT_COMPARE",
    "DEFAULT_STORE",
    "EVAL_MEMBER_MAX_BYTES",
    "HEARTBEAT_S",
    "LEASE_STALE_S",
    "MISSING_RATING",
    "PENDING_PREFIX",
    "PENDING_STATE",
    "PERSONA_COLUMNS",
    "READ_STATE",
    "RESPONSE_COLUMNS",
    "SCHEMA_VERSION",
    "SELF_COLUMNS",
    "SELF_PERSONA_ID",
    "TABLE_COLUMNS",
    "TASK_COLUMNS",
    "BatchJob",
    "BatchLedger",
    "LeaseHeldError",
    "LeaseHolder",
    "PublishedTable",
    "ResponseRow",
    "ResponseStore",
    "Responses",
    "RunInfo",
    "RunLease",
    "RunSummary",
    "TaskResponses",
    "VariantModels",
    "VerifyRows",
    "check_run_id",
    "complete_frame",
    "default_run_id",
    "export_frame",
    "export_run",
    "gold_key",
    "import_csv",
    "load_one_task_source",
    "load_sources",
    "load_task_sources",
    "now_utc",
    "published_columns",
    "read_parquet",
    "read_published_csv",
    "read_task_csv",
    "responses_from_frame",
    "run_summaries",
    "task_run_ids",
    "task_source_kind",
    "write_parquet",
    "write_published_csv",
]

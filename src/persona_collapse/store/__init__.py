"""The response store: SQLite runs, the published CSV format, Parquet, and SOURCE resolution.

Every answer is committed to an SQLite file as it arrives (:class:`ResponseStore`);
published-format CSV files import and export byte for byte
(:func:`read_published_csv`, :func:`write_published_csv`, :func:`import_csv`,
:func:`export_run`); :func:`load_sources` turns a command-line SOURCE into
response tables.
"""

from ._csv import PublishedTable, read_published_csv, write_published_csv
from ._frame import (
    PERSONA_COLUMNS,
    RESPONSE_COLUMNS,
    SELF_COLUMNS,
    complete_frame,
    published_columns,
)
from ._model import (
    MISSING_RATING,
    SELF_PERSONA_ID,
    ResponseRow,
    RunInfo,
)
from ._parquet import read_parquet, write_parquet
from ._schema import SCHEMA_VERSION
from ._source import Responses, load_sources
from ._sqlite import DEFAULT_COMPARE, ResponseStore
from ._transfer import export_frame, export_run, import_csv

__all__ = [
    "DEFAULT_COMPARE",
    "MISSING_RATING",
    "PERSONA_COLUMNS",
    "RESPONSE_COLUMNS",
    "SCHEMA_VERSION",
    "SELF_COLUMNS",
    "SELF_PERSONA_ID",
    "PublishedTable",
    "ResponseRow",
    "ResponseStore",
    "Responses",
    "RunInfo",
    "complete_frame",
    "export_frame",
    "export_run",
    "import_csv",
    "load_sources",
    "published_columns",
    "read_parquet",
    "read_published_csv",
    "write_parquet",
    "write_published_csv",
]

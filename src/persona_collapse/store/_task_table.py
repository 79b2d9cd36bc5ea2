"""Task sources (capability control: MMLU, GSM8K, a user's item set) as typed arrays.

A task source is either a published-format task CSV with the header
``item_id,run_index,answer,gold,correct,format_valid,failures,response,collected_at[,subject]``
(``answer`` empty when nothing parsed; ``correct`` and ``format_valid`` 0/1,
``correct`` 1 exactly where the answer is the gold in a task parser's normal
form, checked on reading; ``subject`` the MMLU subject, absent for GSM8K) or a stored run whose
instrument is a task. A stored task slot is a ``responses`` row with
``persona_id`` -1, ``item_id`` the item's id, ``repetition`` the 1-based
run index, ``rating`` 1 (parsed and correct), 0 (parsed, wrong) or -1 (nothing
parsed), ``failures`` 1 for a format failure (a reply that did not parse),
else 0, and ``extra`` ``{"answer": <parsed answer or null>, "gold": <gold>}``;
subjects come from the instrument's items (``Item.subscale``).

A row *replied* when a reply arrived at all: in a CSV, it has a response, a
parsed answer or ``failures`` above 0 (an empty reply, exported, is a format
failure with an empty response); in a store, it parsed or is a format failure
(a row with neither is a transport loss, not a format failure).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import ConfigError, DataError
from ..instruments import CONTROL_SETS, load_instrument
from ..protocol import normalise_number
from ._csv import _decode, _header, _parse
from ._files import read_input_bytes
from ._frame import text_series
from ._records import RunInfo
from ._source import _kind, is_task_run
from ._sqlite import ResponseStore
from ._task_csv import TASK_COLUMNS
from ._validate import LineLocator, parse_integers

_REQUIRED = ("item_id", "run_index", "answer", "gold", "correct", "format_valid")

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class TaskResponses:
    """One task source, one array element per row (slot).

    ``answer``: the parsed, normalised answer (None when nothing parsed);
    ``gold``: the gold answer; ``correct``: parsed and equal to gold;
    ``format_valid``: an answer parsed; ``replied``: a reply arrived;
    ``subject``: the item's stratum (MMLU subject; ``""`` when unknown).
    ``label`` names the source in tables, ``instrument`` the item set
    (``mmlu``, ``gsm8k``, ...), ``run`` the stored run when there is one.
    """

    label: str
    instrument: str
    item_id: IntArray
    run_index: IntArray
    answer: ObjectArray
    gold: ObjectArray
    correct: BoolArray
    format_valid: BoolArray
    replied: BoolArray
    subject: ObjectArray
    run: RunInfo | None = None
    sha256: str = ""
    notes: tuple[str, ...] = field(default=())

    def item_golds(self) -> dict[int, str]:
        """Item id -> its gold answer as first written (one gold per item: a CSV is checked)."""
        first = np.unique(self.item_id, return_index=True)[1]
        return {int(self.item_id[i]): str(self.gold[i]) for i in first}

    @property
    def simulated(self) -> bool:
        """Whether the data came from a simulated model (by its run record; files count as real)."""
        if self.run is None:
            return False
        return bool(self.run.settings.get("simulated")) or self.run.backend == "sim"


def is_task_header(names: list[str]) -> bool:
    """Whether a CSV header is a task file's (it names ``item_id``, ``answer`` and ``gold``)."""
    return {"item_id", "answer", "gold"} <= set(names)


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's first line ([] when unreadable)."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(65536)
    except OSError:
        return []
    return _header_of(first, path)


def _header_of(first: bytes, path: Path) -> list[str]:
    try:
        return _header(first.decode("utf-8-sig"), path)
    except (UnicodeDecodeError, DataError):
        return []


def _task_bytes(path: Path) -> bytes | None:
    """The bytes of ``path`` when its header is a task file's (:func:`csv_header` on the
    same first line), else None (also when unreadable)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = data[:65536]
    end = head.find(b"\n")
    first = head if end < 0 else head[: end + 1]
    return data if is_task_header(_header_of(first, path)) else None


def _flags(text: pd.Series, column: str, file: str, locate: LineLocator) -> BoolArray:
    values = parse_integers(
        text, column=column, file=file, locate=locate, rule=f"{column} must be 0 or 1"
    ).to_numpy()
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        raise DataError(f"{file} {locate(int(bad[0]))}: {column} {values[bad[0]]} is not 0 or 1")
    return np.asarray(values == 1)


def _format_failed(text: pd.DataFrame, file: str, locate: LineLocator) -> BoolArray:
    """Rows whose optional ``failures`` column is above 0 (an empty cell counts as 0)."""
    if "failures" not in text:
        return np.zeros(len(text), dtype=bool)
    rule = "failures must be a whole number (or empty)"
    values = parse_integers(
        text["failures"], column="failures", file=file, locate=locate, nullable=True, rule=rule
    )
    return np.asarray(values.fillna(0).to_numpy(dtype=np.int64) > 0)


def gold_key(gold: str) -> str:
    """A gold answer in a form that equals any other writing of it (``"1,000"`` is
    ``"1000"``, ``"b"`` is ``"B"``): every task parser's normal form at once
    (:data:`persona_collapse.protocol.TASK_PARSERS`: a number's canonical digits, a
    letter's upper case)."""
    return normalise_number(gold).upper()


def _gold_keys(values: ObjectArray) -> ObjectArray:
    """:func:`gold_key` of each value (as text), computed once per distinct value."""
    distinct, inverse = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return np.array([gold_key(v) for v in distinct], dtype=object)[inverse.reshape(-1)]


def matches_gold(answer: ObjectArray, gold: ObjectArray) -> BoolArray:
    """Whether each parsed answer equals its gold in :func:`gold_key` form (a letter in
    either case, a number with or without thousands commas and trailing zeros)."""
    return np.asarray(_gold_keys(answer) == _gold_keys(gold), dtype=bool)


def _gold_mismatch(item_id: IntArray, gold: ObjectArray) -> BoolArray:
    """Rows whose gold is not (in :func:`gold_key` form) their item's first row's gold."""
    keys = _gold_keys(gold)
    first = np.unique(item_id, return_index=True, return_inverse=True)
    return np.asarray(keys != keys[first[1]][first[2]], dtype=bool)


def _check_rows(
    item_id: IntArray,
    run_index: IntArray,
    answers: tuple[ObjectArray, ObjectArray],
    flags: tuple[BoolArray, BoolArray],
    file: str,
    locate: LineLocator,
) -> None:
    """Ids in range, each slot once, one gold per item, an answer exactly where one parsed,
    and ``correct`` exactly where the parsed answer is the gold."""
    answer, gold = answers
    correct, valid = flags
    right = valid & matches_gold(answer, gold)
    checks = [
        (item_id < 0, "item_id must be a whole number >= 0"),
        (run_index < 1, "run_index must be a whole number >= 1"),
        (correct & ~valid, "correct is 1 but format_valid is 0"),
        (valid != (answer != ""), "answer must be empty exactly where format_valid is 0"),
        (correct & ~right, "correct is 1 but the answer is not the gold"),
        (right & ~correct, "correct is 0 but the answer is the gold"),
    ]
    keys = pd.DataFrame({"i": item_id, "r": run_index})
    checks.append((keys.duplicated().to_numpy(), "this (item_id, run_index) slot occurs twice"))
    for mask, rule in checks:
        bad = np.flatnonzero(mask)
        if bad.size:
            raise DataError(f"{file} {locate(int(bad[0]))}: {rule}; fix or remove that row")
    bad = np.flatnonzero(_gold_mismatch(item_id, gold))
    if bad.size:
        row = int(bad[0])
        first = int(np.flatnonzero(item_id == item_id[row])[0])
        raise DataError(
            f"{file} {locate(row)}: item {item_id[row]} has gold {gold[row]!r} here but "
            f"{gold[first]!r} on {locate(first)}; an item has one gold answer, fix that row"
        )


def read_task_csv(path: str | Path) -> TaskResponses:
    """Read and check one published-format task CSV (one-line DataError on any problem)."""
    file = Path(path)
    return _task_from_bytes(file, read_input_bytes(file, what="CSV file"))


def _task_from_bytes(file: Path, data: bytes) -> TaskResponses:
    """:func:`read_task_csv` of the bytes ``data`` read from ``file``."""
    if not data.strip():
        raise DataError(f"{file} is empty; expected the header {','.join(TASK_COLUMNS)}")
    text = _parse(_decode(data, file), file)
    missing = [c for c in _REQUIRED if c not in text.columns]
    if missing:
        raise DataError(
            f"{file} lacks the column(s) {', '.join(missing)}; a task file has the header "
            f"{','.join(TASK_COLUMNS)}[,subject]"
        )
    if text.empty:
        raise DataError(f"{file} has a header but no rows; it holds no responses")
    name, locate = str(file), LineLocator(text)
    ids = "ids must be whole numbers >= 0; fix or remove that row"
    item_id = parse_integers(text["item_id"], column="item_id", file=name, locate=locate, rule=ids)
    run_index = parse_integers(
        text["run_index"], column="run_index", file=name, locate=locate, rule=ids
    )
    answer = text_series(text["answer"]).str.strip().to_numpy(dtype=object)
    gold = text_series(text["gold"]).str.strip().to_numpy(dtype=object)
    correct = _flags(text["correct"], "correct", name, locate)
    valid = _flags(text["format_valid"], "format_valid", name, locate)
    _check_rows(
        item_id.to_numpy(), run_index.to_numpy(), (answer, gold), (correct, valid), name, locate
    )
    response = (
        text_series(text["response"]) if "response" in text else pd.Series("", index=text.index)
    )
    subject = text_series(text["subject"]) if "subject" in text else pd.Series("", index=text.index)
    return TaskResponses(
        label=file.stem,
        instrument=_instrument_of(file.stem),
        item_id=item_id.to_numpy(dtype=np.int64),
        run_index=run_index.to_numpy(dtype=np.int64),
        answer=_masked(answer, valid),
        gold=gold,
        correct=correct,
        format_valid=valid,
        replied=(response.to_numpy(dtype=object) != "")
        | valid
        | _format_failed(text, name, locate),
        subject=subject.to_numpy(dtype=object),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _masked(values: ObjectArray, keep: BoolArray) -> ObjectArray:
    """``values`` with None where ``keep`` is False."""
    out = np.full(values.shape, None, dtype=object)
    out[keep] = values[keep]
    return out


def _instrument_of(stem: str) -> str:
    """The item set a file's name suggests (``..._mmlu`` -> ``mmlu``), else the stem."""
    for name in CONTROL_SETS:
        if stem.lower().endswith(name):
            return name
    return stem


def _subjects(run: RunInfo, item_id: IntArray) -> tuple[ObjectArray, tuple[str, ...]]:
    """Each row's subject from the run's instrument items (``""`` with a note when not loadable)."""
    try:
        inst = load_instrument(run.instrument)
    except DataError:
        note = f"instrument {run.instrument!r} not found: items are not stratified by subject"
        return np.full(item_id.size, "", dtype=object), (note,)
    ids = np.array([it.id for it in inst.items], dtype=np.int64)
    names = np.array([it.subscale for it in inst.items] + [""], dtype=object)
    sorter = np.argsort(ids)
    pos = sorter[np.minimum(np.searchsorted(ids, item_id, sorter=sorter), ids.size - 1)]
    return np.where(ids[pos] == item_id, names[pos], ""), ()


def task_run_responses(store: ResponseStore, run: RunInfo, label: str) -> TaskResponses:
    """A stored task run's rows per the task-slot contract (see the module doc)."""
    frame = store.responses_frame(run.run_id)
    if frame.empty:
        raise DataError(f"{label} holds no responses yet; run it first")
    extra = [e if isinstance(e, dict) else {} for e in frame["extra"].tolist()]
    rating = frame["rating"].to_numpy(dtype=np.int64)
    failures = frame["failures"].fillna(0).to_numpy(dtype=np.int64)
    item_id = frame["question_id"].to_numpy(dtype=np.int64)
    subject, notes = _subjects(run, item_id)
    valid = rating != -1
    return TaskResponses(
        label=label,
        instrument=run.instrument,
        item_id=item_id,
        run_index=frame["run_index"].to_numpy(dtype=np.int64),
        answer=_masked(np.array([e.get("answer") for e in extra], dtype=object), valid),
        gold=np.array([str(e.get("gold", "")) for e in extra], dtype=object),
        correct=rating == 1,
        format_valid=valid,
        replied=valid | (failures > 0),
        subject=subject,
        run=run,
        notes=notes,
    )


def task_source_kind(spec: str) -> str | None:
    """How ``spec`` names task sources, or None when it names questionnaire data (or nothing).

    ``csv``: a task CSV; ``folder``: a folder whose CSV files are all task
    files; ``store``: a store whose runs are all task runs; ``run``:
    ``STORE.db:RUN_ID`` of a task run.
    """
    found = _task_source(spec, load=False)
    return None if found is None else found[0]


def load_task_sources(spec: str) -> list[TaskResponses]:
    """The task sources ``spec`` names (see :func:`task_source_kind`); DataError for others.

    Each file or store is opened once, to tell its kind and to read it.
    """
    found = _task_source(spec, load=True)
    if found is None:
        raise DataError(
            f"{spec} is not a task source; give a task CSV "
            f"({','.join(TASK_COLUMNS)}[,subject]), a folder of them or STORE.db:RUN_ID of a task run"
        )
    return found[1]


def _task_source(spec: str, *, load: bool) -> tuple[str, list[TaskResponses]] | None:
    """The kind of task source ``spec`` names (:func:`task_source_kind`) and, with ``load``,
    its sources ([] without); None when it names no task source."""
    path = Path(spec)
    if path.is_dir():
        csvs = [p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file()]
        return _csv_tasks("folder", sorted(csvs, key=lambda p: p.name), load) if csvs else None
    if path.is_file():
        kind = _kind(path)
        if kind == "csv":
            return _csv_tasks("csv", [path], load)
        if kind != "store" or path.stat().st_size == 0:
            return None
        return _store_tasks("store", path, None, load)
    name, sep, run_id = spec.rpartition(":")
    if sep and run_id and Path(name).is_file() and _kind(Path(name)) == "store":
        return _store_tasks("run", Path(name), run_id, load)
    return None


def _csv_tasks(kind: str, files: list[Path], load: bool) -> tuple[str, list[TaskResponses]] | None:
    """``files`` as task CSVs when every one has a task header (checked from its first line
    alone without ``load``; with it, from the bytes then read), else None."""
    if not load:
        return (kind, []) if all(is_task_header(csv_header(p)) for p in files) else None
    read: list[tuple[Path, bytes]] = []
    for file in files:
        data = _task_bytes(file)
        if data is None:
            return None
        read.append((file, data))
    return kind, [_task_from_bytes(file, data) for file, data in read]


def _store_tasks(
    kind: str, path: Path, run_id: str | None, load: bool
) -> tuple[str, list[TaskResponses]] | None:
    """The runs of the store at ``path`` (or its run ``run_id``) when all are task runs, read
    with ``load``; None otherwise."""
    with ResponseStore.for_reading(path) as store:
        if run_id is None:
            runs = store.list_runs()
        else:
            run = store.get_run(run_id)
            runs = [] if run is None else [run]
        if not runs or not all(is_task_run(r) for r in runs):
            return None
        if not load:
            return kind, []
        return kind, [task_run_responses(store, r, f"{path.name}:{r.run_id}") for r in runs]


def load_one_task_source(
    spec: str, what: str, *, accepted: str = "a task CSV or STORE.db:RUN_ID"
) -> TaskResponses:
    """The one task source ``spec`` names (:func:`load_task_sources`); ConfigError when it holds
    none or several (a folder, a store of many task runs).

    ``what`` starts the message (``--base``, ``study.toml [x] mmlu:``); ``accepted`` says what
    names exactly one. A spec that is no task source is :func:`load_task_sources`'s DataError.
    """
    found = load_task_sources(spec)
    if len(found) != 1:
        raise ConfigError(
            f"{what} {spec} holds {len(found)} task sources; name exactly one ({accepted})"
        )
    return found[0]

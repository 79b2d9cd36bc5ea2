"""Issue 18, "Bounded, strict readers": inspect_ai ``.eval`` logs as a SOURCE.

Scores must be whole ratings on the instrument's scale (findings 4 and 10), ids
whole numbers, and every zip member is size-checked before it is parsed
(finding 10). Each bad log is one DataError line naming the sample and the value.

One real log is made with inspect's ``mockllm/model`` (1 persona, 1 epoch: 30
samples); the bad logs are copies of it with one member rewritten by hand.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai")

from persona_collapse.errors import DataError
from persona_collapse.store import load_sources

from .helpers import run_cli
from .test_inspect import _STUB, _answering

SAMPLE = "samples/p0-q2_epoch_1.json"
"""The member rewritten in the bad copies: persona 0, item 2, epoch 1."""


@pytest.fixture(scope="module")
def good_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log of ``persona_collapse/mfq_personas``: 1 persona x 30 items x 1 epoch."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import get_model

    from persona_collapse.inspect_tasks import mfq_personas

    exec(_STUB, {})  # offline stand-in for the mock's token counter
    folder = tmp_path_factory.mktemp("eval")
    personas = folder / "personas.json"
    personas.write_text(json.dumps(["Persona 0, a careful person."]), encoding="utf-8")
    model = get_model("mockllm/model", custom_outputs=_answering(0.5, 1))
    task = mfq_personas(personas=str(personas), n_personas=1, reps=1)
    (log,) = inspect_eval(task, model=model, log_dir=str(folder / "logs"), display="none")
    assert log.status == "success", log.error
    return Path(log.location)


def _copy(good: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """``good`` with the sample :data:`SAMPLE` changed by ``edit`` (its parsed JSON)."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == SAMPLE:
                doc = json.loads(data)
                edit(doc)
                data = json.dumps(doc).encode("utf-8")  # NaN is written as NaN
            dst.writestr(info.filename, data)
    return target


def _score(value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["scores"]["rating"]["value"] = value

    return edit


@pytest.mark.parametrize(
    ("value", "shown"),
    [(2.5, "2.5"), (4.9, "4.9"), ("five", "five"), (math.nan, "nan"), (7, "7"), (True, "True")],
)
def test_eval_scores_must_be_whole_ratings(
    good_log: Path, tmp_path: Path, value: Any, shown: str
) -> None:
    """Finding 4: 2.5 and 4.9 were stored as 2 and 4; "five" and NaN were a traceback."""
    bad = _copy(good_log, tmp_path / "bad.eval", _score(value))
    with pytest.raises(DataError) as caught:
        load_sources(str(bad))
    message = str(caught.value)
    assert "\n" not in message
    assert "p0-q2" in message and shown.lower() in message.lower(), message
    assert "0-5" in message, message  # the instrument's scale


def test_whole_scores_as_floats_or_text_still_read(good_log: Path, tmp_path: Path) -> None:
    """4.0 and "4" are whole ratings (a score's JSON may carry either)."""
    for value in (4.0, "4"):
        ok = _copy(good_log, tmp_path / "ok.eval", _score(value))
        (table,) = load_sources(str(ok))
        row = table.frame.query("question_id == 2")
        assert row["rating"].tolist() == [4]


@pytest.mark.parametrize(("key", "value"), [("persona_id", "abc"), ("question_id", 2.5)])
def test_eval_ids_must_be_whole_numbers(
    good_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: Any
) -> None:
    """Finding 10: a persona id "abc" was a traceback; 2.5 was truncated."""

    def edit(doc: dict[str, Any]) -> None:
        doc["metadata"][key] = value

    bad = _copy(good_log, tmp_path / "bad.eval", edit)
    result = run_cli(capsys, "metrics", str(bad))
    assert result.status == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert key in lines[0] and str(value) in lines[0] and "p0-q2" in lines[0], lines[0]


def test_a_bad_score_on_the_command_line_is_one_line(
    good_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _copy(good_log, tmp_path / "bad.eval", _score("five"))
    result = run_cli(capsys, "export", str(bad), "-o", str(tmp_path / "out.csv"))
    assert result.status == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert "'five'" in lines[0] and "p0-q2" in lines[0], lines[0]
    assert not (tmp_path / "out.csv").exists()


# -- bounded members ----------------------------------------------------------------


def test_the_member_bound_is_documented_and_generous() -> None:
    from persona_collapse.store import EVAL_MEMBER_MAX_BYTES

    assert EVAL_MEMBER_MAX_BYTES == 256 * 2**20


def _padded(good: Path, target: Path, pad: int, method: int = zipfile.ZIP_DEFLATED) -> Path:
    """``good`` with ``pad`` spaces of whitespace after the JSON of :data:`SAMPLE`
    (members compressed with zip ``method``: 8 deflate, 93 zstd)."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(target, "w", method) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == SAMPLE:
                data += b" " * pad
            dst.writestr(info.filename, data)
    return target


def test_an_oversized_member_is_refused_before_it_is_read(
    good_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Finding 10: a whitespace member far over the bound is refused by its declared size
    (the bound is lowered to 1 MiB here; a real log's members are a few kB)."""
    import persona_collapse.store._inspect_log as inspect_log

    monkeypatch.setattr(inspect_log, "EVAL_MEMBER_MAX_BYTES", 2**20)
    big = _padded(good_log, tmp_path / "big.eval", 3 * 2**20)
    assert big.stat().st_size < 2**20  # whitespace compresses: a small file, a large member

    def no_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the log was parsed before its members were checked")

    monkeypatch.setattr("inspect_ai.log.read_eval_log", no_parse)
    result = run_cli(capsys, "metrics", str(big))
    assert result.status == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert SAMPLE in lines[0] and "MiB" in lines[0], lines[0]
    # under the bound the same padding reads as before
    small = _padded(good_log, tmp_path / "small.eval", 2**19)
    monkeypatch.undo()
    (table,) = load_sources(str(small))
    assert len(table.frame) == 30


def _lie_about_size(path: Path, member: str, declared: int) -> None:
    """Rewrite the central directory's uncompressed size of ``member`` to ``declared``."""
    data = bytearray(path.read_bytes())
    name = member.encode("utf-8")
    with zipfile.ZipFile(path) as archive:
        start = archive.start_dir  # offset of the central directory
    at = data.find(b"PK\x01\x02", start)
    while at != -1:
        name_len = int.from_bytes(data[at + 28 : at + 30], "little")
        if bytes(data[at + 46 : at + 46 + name_len]) == name:
            data[at + 24 : at + 28] = declared.to_bytes(4, "little")
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{member} not found")


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, 93], ids=["deflate", "zstd"])
def test_a_member_larger_than_it_declares_is_refused_unread(
    good_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: int
) -> None:
    """A lying header (declares 9 kB, holds 3 MiB) is counted while streaming, never
    unpacked whole (zstd, inspect's own method, has no output bound in zipfile)."""
    liar = _padded(good_log, tmp_path / "liar.eval", 3 * 2**20, method)
    _lie_about_size(liar, SAMPLE, 9000)

    def no_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the log was parsed before its members were checked")

    monkeypatch.setattr("inspect_ai.log.read_eval_log", no_parse)
    with pytest.raises(DataError, match="holds more than the 9000 bytes") as caught:
        load_sources(str(liar))
    assert SAMPLE in str(caught.value) and "\n" not in str(caught.value)

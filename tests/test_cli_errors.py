"""Bad input: one clear line on stderr, exit status 2, no traceback (as a user runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEADER = "persona_id,question_id,run_index,rating,failures,response,collected_at\n"


def _good_rows(n_personas: int = 2) -> str:
    return "".join(
        f"{p},{q},{r},3,0,3,2025-10-28T11:20:15.844921\n"
        for p in range(n_personas)
        for q in range(1, 31)
        for r in (1, 2)
    )


def _cli(
    *argv: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "persona_collapse", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        timeout=120,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_good_file_works(tmp_path: Path) -> None:
    path = _write(tmp_path, "good.csv", HEADER + _good_rows())
    result = _cli(
        "metrics", str(path), "--format", "json", "--persona-draws", "10", "--repetition-draws", "5"
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [
        ("empty.csv", "", ("empty",)),
        ("header_only.csv", HEADER, ("no rows",)),
        (
            "missing_columns.csv",
            "persona_id,question_id,rating\n0,1,3\n",
            ("missing", "run_index"),
        ),
        ("out_of_range.csv", HEADER + _good_rows().replace(",3,0,3,", ",7,0,7,", 1), ("7", "0")),
        ("not_integer.csv", HEADER + _good_rows().replace(",3,0,3,", ",2.5,0,2.5,", 1), ("2.5",)),
        ("text_rating.csv", HEADER + _good_rows().replace(",3,0,3,", ",high,0,3,", 1), ("high",)),
        (
            "duplicate.csv",
            HEADER + _good_rows() + "0,1,1,3,0,3,2025-10-28T11:20:15\n",
            ("duplicate",),
        ),
        ("not_utf8.csv", HEADER.encode() + b"0,1,1,3,0,\xff\xfe,2025\n", ("utf-8",)),
    ],
)
def test_bad_response_files(
    tmp_path: Path, name: str, content: str | bytes, needles: tuple[str, ...]
) -> None:
    path = _write(tmp_path, name, content)
    for command in (
        ("metrics", str(path)),
        ("import", str(path), "--store", str(tmp_path / "s.db")),
    ):
        result = _cli(*command)
        _assert_one_line_error(result, *needles)
        assert str(path.name) in result.stderr


def test_missing_source_file(tmp_path: Path) -> None:
    _assert_one_line_error(_cli("metrics", str(tmp_path / "nope.csv")), "nope.csv")


def test_store_in_missing_folder(tmp_path: Path) -> None:
    path = _write(tmp_path, "good.csv", HEADER + _good_rows())
    result = _cli("import", str(path), "--store", str(tmp_path / "no" / "such" / "store.db"))
    _assert_one_line_error(result, "does not exist")


def test_unknown_run_in_store(tmp_path: Path) -> None:
    path = _write(tmp_path, "good.csv", HEADER + _good_rows())
    store = tmp_path / "s.db"
    assert _cli("import", str(path), "--store", str(store)).returncode == 0
    _assert_one_line_error(_cli("metrics", f"{store}:other"), "other", "good")


@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [
        ("dict.json", '{"a": "persona"}', ("list",)),
        ("numbers.json", '["a persona", 3]', ("string",)),
        ("broken.json", '["a persona",', ("json",)),
        ("latin1.txt", "caf\xe9 owner\n".encode("latin-1"), ("utf-8",)),
        ("empty.json", "", ("empty",)),
    ],
)
def test_bad_persona_files(
    tmp_path: Path, name: str, content: str | bytes, needles: tuple[str, ...]
) -> None:
    path = _write(tmp_path, name, content)
    _assert_one_line_error(_cli("personas", str(path)), *needles)


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    _assert_one_line_error(_cli("metrics"), "source")
    _assert_one_line_error(
        _cli("compare", "--base", "x.csv", "--variant", "nolabel"), "label=source"
    )
    _assert_one_line_error(_cli("metrics", "x.csv", "--format", "xml"), "format")


def test_unknown_command_suggests_the_near_one() -> None:
    _assert_one_line_error(_cli("metrcs", "x.csv"), "invalid choice", "did you mean 'metrics'?")


def test_unknown_family_suggests_the_near_one() -> None:
    for command in ("run", "verify"):
        _assert_one_line_error(
            _cli(command, "opnai/gpt-4o"),
            "unknown model family 'opnai'",
            "did you mean 'openai'?",
            "known: openai, openrouter",
        )


def test_far_family_lists_the_known_ones_without_a_guess() -> None:
    result = _cli("run", "zzz/model")
    _assert_one_line_error(result, "unknown model family 'zzz'", "known: openai")
    assert "did you mean" not in result.stderr


def test_run_checks_the_model_before_any_persona_is_read(tmp_path: Path) -> None:
    """A misspelt family fails first: no persona file is read, nothing is downloaded or cached."""
    cache = tmp_path / "cache"
    env = {
        "PERSONA_COLLAPSE_CACHE": str(cache),
        "PERSONA_COLLAPSE_PERSONAHUB": str(tmp_path / "no-such-personas.json"),
    }
    result = _cli("run", "opnai/gpt-4o", "--store", str(tmp_path / "s.db"), env=env)
    _assert_one_line_error(result, "did you mean 'openai'?")
    assert not cache.exists() or not any(cache.iterdir())
    assert not (tmp_path / "s.db").exists()

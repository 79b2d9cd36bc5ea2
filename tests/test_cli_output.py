"""Machine output is strict JSON, and numpy's RuntimeWarnings never reach stderr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona_collapse.cli import strict_json

from .helpers import run_cli


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"non-standard JSON constant {name}")


def _self_csv(path: Path) -> Path:
    rows = ["question_id,run_index,rating,failures,response,collected_at"]
    for q in range(1, 31):
        for r in range(1, 4):
            rows.append(f"{q},{r},{(q + r) % 6},0,{(q + r) % 6},2026-01-01T00:00:00.000000")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_metrics_json_has_null_where_a_number_is_undefined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _self_csv(tmp_path / "model_self.csv")
    result = run_cli(capsys, "metrics", str(source), "--format", "json", "--persona-draws", "20")
    assert result.status == 0, result.err
    doc = json.loads(result.out, parse_constant=_refuse_constant)
    assert doc[0]["S"] is None  # one "persona": no spread across personas
    assert "RuntimeWarning" not in result.err


def test_strict_json_converts_numpy_and_non_finite_values() -> None:
    doc = {"a": [np.float64("nan"), float("inf"), np.int64(3), np.bool_(True)], "b": (1.5,)}
    assert strict_json(doc) == {"a": [None, None, 3, True], "b": [1.5]}

"""Issue 18, "Bounded, strict readers": broken model files, read-only outputs, nested folders.

Findings 11 (a GGUF cut inside its header, a GGUF whose architecture fields
disagree, a truncated ``model.safetensors``) and 13 (``export`` onto a
read-only file system; ``metrics`` on a folder whose CSV files sit in
subfolders). Each is one line on stderr and exit status 2, no traceback.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.helpers import Result, run_cli
from tests.test_inputs import _csv


def _one_line(result: Result, *needles: str) -> str:
    assert result.status == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


# -- finding 13: outputs on a read-only file system ----------------------------------


def _read_only_file_system(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Writes and removals under ``folder`` fail as on a read-only mount (EROFS), where
    even unlinking a file that does not exist is refused (permission checks pass as
    root; a read-only mount does not)."""

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if str(self).startswith(str(folder)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(pq, "write_table", fail)
    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    monkeypatch.setattr(Path, "unlink", unlink)


def test_export_onto_a_read_only_file_system_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _csv(tmp_path / "a.csv")
    media = tmp_path / "media"
    media.mkdir()
    _read_only_file_system(monkeypatch, media)
    for name in ("out.csv", "out.parquet"):
        result = run_cli(capsys, "export", str(source), "-o", str(media / name))
        _one_line(result, "cannot write", "read-only file system")
    assert not list(media.iterdir())


def test_a_temporary_file_that_cannot_be_removed_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written, then the rename and the removal fail: one line naming the leftover."""
    source = _csv(tmp_path / "a.csv")
    media = tmp_path / "media"
    media.mkdir()
    real_unlink = Path.unlink

    def fail_replace(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if str(self).startswith(str(media)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(os, "replace", fail_replace)
    monkeypatch.setattr(Path, "unlink", unlink)
    result = run_cli(capsys, "export", str(source), "-o", str(media / "out.csv"))
    line = _one_line(result, "cannot write", "read-only file system", "remove")
    (leftover,) = media.iterdir()
    assert str(leftover) in line


# -- finding 13: a folder whose tables sit in subfolders -----------------------------


def test_a_folder_of_folders_says_where_the_tables_are(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    study = tmp_path / "study"
    for sub, count in (("base", 2), ("insecure-code", 1)):
        (study / sub).mkdir(parents=True)
        for i in range(count):
            _csv(study / sub / f"m{i}.csv")
    (study / "notes").mkdir()
    result = run_cli(capsys, "metrics", str(study))
    line = _one_line(result, "holds no .csv files", "base/", "insecure-code/", "hold 3")
    assert f"{study / 'base'}" in line and "notes" not in line


def test_the_published_layout_is_pointed_at(
    capsys: pytest.CaptureFixture[str], reference: Path
) -> None:
    folder = reference / "costa2026"
    if not folder.is_dir():
        pytest.skip("reference data costa2026/ is missing")
    result = run_cli(capsys, "metrics", str(folder))
    _one_line(result, "base/", "secure-code/", f"{folder / 'base'}")


# -- finding 11: broken model files --------------------------------------------------

PERSONAS = ["A retired schoolteacher.", "A rock climber.", "A farmer."]


@pytest.fixture
def hf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline, on the CPU, with a private cache; returns a personas file."""
    for module in ("torch", "transformers", "tokenizers"):
        pytest.importorskip(module, reason="the hf extra is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PERSONA_COLLAPSE_HF_DEVICE", "cpu")
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path / "cache"))
    personas = tmp_path / "personas.json"
    personas.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return personas


def _run_model(capsys: pytest.CaptureFixture[str], model: str, personas: Path) -> Result:
    store = personas.parent / "x.db"
    result = run_cli(
        capsys, "run", model, "--store", str(store),
        "--personas", str(personas), "--n-personas", "3", "--quiet",
    )  # fmt: skip
    assert not store.exists()
    return result


def _tiny_gguf(path: Path, *, embed: int = 8, heads: int = 2, vocab: int = 16) -> Path:
    """A tiny llama-architecture GGUF with a SentencePiece-style vocabulary of ``vocab``
    tokens and one (zero) embedding tensor."""
    gguf = pytest.importorskip("gguf", reason="the hf extra (gguf) is not installed")
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(32)
    writer.add_embedding_length(embed)
    writer.add_feed_forward_length(16)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_layer_norm_rms_eps(1e-5)
    tokens = ["<unk>", "<s>", "</s>"] + [chr(97 + i) for i in range(vocab - 3)]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * vocab)
    writer.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_tensor("token_embd.weight", np.zeros((vocab, embed), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_cut_inside_its_header_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, hf_env: Path
) -> None:
    """It was a ``struct.error`` traceback."""
    whole = _tiny_gguf(tmp_path / "whole.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole.read_bytes()[:100])
    result = _run_model(capsys, f"hf/{cut}", hf_env)
    _one_line(result, "cut.gguf", "truncated", "download it again")
    assert not list((tmp_path / "cache").glob("hf-gguf/*"))


def test_a_gguf_whose_architecture_fields_disagree_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, hf_env: Path
) -> None:
    """8 hidden units over 3 attention heads: transformers' config check raised a
    StrictDataclassClassValidationError traceback."""
    odd = _tiny_gguf(tmp_path / "odd.gguf", embed=8, heads=3)
    result = _run_model(capsys, f"hf/{odd}", hf_env)
    lines = [line for line in result.err.strip().splitlines() if "converting" not in line]
    assert result.status == 2 and "Traceback" not in result.err, result.err
    assert len(lines) == 1, result.err
    assert "odd.gguf" in lines[0] and "attention heads (3)" in lines[0], lines[0]
    assert not list((tmp_path / "cache").glob("hf-gguf/*"))


@pytest.mark.parametrize("keep", [5, 0.5], ids=["inside-header", "half"])
def test_a_truncated_safetensors_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, hf_env: Path, keep: float
) -> None:
    """It was a SafetensorError traceback ("incomplete metadata, file not fully covered")."""
    from persona_collapse.testing import build_tiny_model

    folder = build_tiny_model(tmp_path / "tiny", vocab_size=300, layers=1)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(keep if keep >= 1 else len(data) * keep)])
    result = _run_model(capsys, f"hf/{folder}", hf_env)
    word = "damaged" if keep == 5 else "truncated"
    _one_line(result, "model.safetensors", word, "again")

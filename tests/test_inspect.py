"""inspect_ai interop: the registered task ``persona_collapse/mfq_personas`` and ``.eval`` logs.

Offline throughout: the model is inspect's ``mockllm/model``. inspect's mock
counts prompt tokens with tiktoken's ``o200k_base`` encoding, which tiktoken
downloads on first use; with no network the tests register a byte-level
stand-in encoding under that name (token counts of the mock only; nothing the
task or the reader uses).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

inspect_ai = pytest.importorskip("inspect_ai")

from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.model import ModelOutput, ModelUsage, get_model  # noqa: E402

import persona_collapse as pc  # noqa: E402
from persona_collapse.errors import DataError  # noqa: E402
from persona_collapse.inspect_tasks import TASK_NAME, mfq_personas  # noqa: E402
from persona_collapse.store import load_sources  # noqa: E402

from .helpers import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PERSONAS = [f"Persona {i}, a person whose views are of kind {i % 3}." for i in range(5)]
FAST = ["--persona-draws", "50", "--repetition-draws", "20"]

_STUB = '''
import tiktoken, tiktoken.registry
try:
    tiktoken.get_encoding("o200k_base")
except Exception:  # offline: a byte-level stand-in for the mock's token counts
    tiktoken.registry.ENCODINGS["o200k_base"] = tiktoken.Encoding(
        name="o200k_base",
        pat_str=r"""\\S+|\\s+""",
        mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={},
    )
'''


@pytest.fixture(scope="module")
def offline_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A sitecustomize folder (for subprocesses) and the same stand-in in this process."""
    folder = tmp_path_factory.mktemp("site")
    (folder / "sitecustomize.py").write_text(_STUB, encoding="utf-8")
    exec(_STUB, {})
    yield folder


@pytest.fixture
def persona_file(tmp_path: Path) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(PERSONAS), encoding="utf-8")
    return path


def _answering(spread: float, seed: int) -> Any:
    """A mock model: persona i leans by i * spread; one answer in five is not a digit."""
    rng = random.Random(seed)

    def answer(messages: list[Any], tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
        prompt = messages[0].text
        persona = int(re.search(r"Persona (\d+)", prompt).group(1))  # type: ignore[union-attr]
        if config.max_tokens == 1 and rng.random() < 0.2:
            text = "I"
        else:
            lean = (persona - 2) * spread
            value = min(5, max(0, round(2.5 + lean + rng.gauss(0, 0.8))))
            text = str(value) if config.max_tokens == 1 else f"I would say {value}."
        output = ModelOutput.from_content(model="mockllm", content=text)
        output.usage = ModelUsage(input_tokens=50, output_tokens=1, total_tokens=51)
        return output

    return answer


def _eval(persona_file: Path, log_dir: Path, spread: float, seed: int) -> Path:
    model = get_model("mockllm/model", custom_outputs=_answering(spread, seed))
    task = mfq_personas(personas=str(persona_file), n_personas=5, reps=2)
    (log,) = inspect_eval(task, model=model, log_dir=str(log_dir), display="none")
    assert log.status == "success", log.error
    return Path(log.location)


def test_entry_point_is_declared_and_registers_the_task() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    target = project["project"]["entry-points"]["inspect_ai"]["persona_collapse"]
    assert target == "persona_collapse.inspect_tasks"
    assert any(
        r.startswith("inspect-ai") for r in project["project"]["optional-dependencies"]["inspect"]
    )
    module = __import__(target, fromlist=["mfq_personas"])
    assert module.mfq_personas is mfq_personas


def test_task_asks_the_published_protocol(persona_file: Path, tmp_path: Path) -> None:
    task = mfq_personas(personas=str(persona_file), n_personas=3, reps=4, temperature=0.3)
    assert len(task.dataset) == 3 * 30 and task.epochs == 4
    sample = task.dataset[0]
    assert sample.metadata == {"persona_id": 0, "question_id": 1, "instrument": "mfq30"}
    from inspect_ai._util.registry import registry_info

    assert registry_info(task).name == TASK_NAME


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "greedy"}, "--method 'greedy' is unknown; use sample or logprobs"),
        ({"temperature": 2.5}, "--temperature must be between 0 and 2"),
        ({"max_attempts": 0}, "--max-attempts must be at least 1"),
    ],
)
def test_task_and_solver_check_the_protocol_settings(
    persona_file: Path, changes: dict[str, Any], message: str
) -> None:
    from persona_collapse.errors import ConfigError
    from persona_collapse.inspect_tasks import published_protocol

    with pytest.raises(ConfigError, match=message):
        mfq_personas(personas=str(persona_file), n_personas=1, reps=1, **changes)
    with pytest.raises(ConfigError, match=message):  # never silently the sampling protocol
        published_protocol(personas=str(persona_file), n_personas=1, **changes)


def test_eval_log_is_a_source(
    offline_tokens: Path, persona_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _eval(persona_file, tmp_path / "logs", spread=0.8, seed=1)
    (table,) = load_sources(str(log))
    frame = table.frame
    assert len(frame) == 5 * 30 * 2 and table.mode == "persona" and table.method == "sample"
    assert sorted(frame["run_index"].unique()) == [1, 2]
    assert frame["rating"].between(0, 5).all()  # every slot answered (retries, fallback)
    assert (frame["failures"] > 0).any()  # the "I" answers were retried
    metrics = pc.measure(log, persona_draws=50, repetition_draws=20)
    assert metrics.n_personas == 5 and metrics.S > 0.5

    result = run_cli(capsys, "metrics", str(log), "--format", "json", *FAST)
    assert result.status == 0, result.err
    doc = result.json()
    doc = doc[0] if isinstance(doc, list) else doc
    assert doc["S"] == pytest.approx(metrics.S) and doc["n_personas"] == 5

    out = tmp_path / "export.csv"
    result = run_cli(capsys, "export", "-o", str(out), str(log))
    assert result.status == 0, result.err
    assert out.read_text(encoding="utf-8").splitlines()[0].startswith("persona_id,question_id")

    narrow = _eval(persona_file, tmp_path / "logs2", spread=0.1, seed=2)
    result = run_cli(
        capsys,
        "compare",
        "--base",
        str(log),
        "--variant",
        f"narrow={narrow}",
        "--format",
        "json",
        *FAST,
    )
    assert result.status == 0, result.err
    delta = result.json()["variants"]["narrow"]["delta_pct"]["S"]
    assert delta < -30


def test_a_foreign_file_named_eval_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "x.eval"
    bogus.write_text("not a log", encoding="utf-8")
    with pytest.raises(DataError, match="cannot read inspect log"):
        load_sources(str(bogus))


def _cli_env(offline_tokens: Path, tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH for ``inspect``: the stand-in and, when the installed
    metadata lacks the entry point (a checkout run without reinstalling), a dist-info
    declaring it as pyproject.toml does."""
    # The package itself comes from the installed (editable) distribution or the caller's
    # PYTHONPATH, passed on below; naming this checkout's src/ again hides the task from
    # inspect's registry.
    paths = [str(offline_tokens)]
    declared = any(
        ep.value == "persona_collapse.inspect_tasks" for ep in entry_points(group="inspect_ai")
    )
    if not declared:
        info = tmp_path / "eps" / "persona_collapse_inspect-0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: persona-collapse-inspect\nVersion: 0\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            "[inspect_ai]\npersona_collapse = persona_collapse.inspect_tasks\n", encoding="utf-8"
        )
        paths.append(str(info.parent))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    env["INSPECT_LOG_DIR"] = str(tmp_path / "logs")
    return env


def test_inspect_eval_command_line_with_mockllm(
    offline_tokens: Path, persona_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``inspect eval persona_collapse/mfq_personas --model mockllm/model``: the mock's
    fixed answer is never a digit, so every slot takes 10 one-token attempts and the
    fallback, and is stored missing (-1) with 11 failures."""
    inspect_cli = Path(sys.executable).with_name("inspect")
    command = [
        str(inspect_cli) if inspect_cli.exists() else "inspect",
        "eval",
        TASK_NAME,
        "--model",
        "mockllm/model",
        "-T",
        f"personas={persona_file}",
        "-T",
        "n_personas=2",
        "-T",
        "reps=2",
        "--display",
        "none",
    ]
    env = _cli_env(offline_tokens, tmp_path)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (log,) = sorted((tmp_path / "logs").glob("*.eval"))
    (table,) = load_sources(str(log))
    frame = table.frame
    assert len(frame) == 2 * 30 * 2
    assert (frame["rating"] == -1).all() and (frame["failures"] == 11).all()
    result = run_cli(capsys, "export", "-o", str(tmp_path / "out.csv"), str(log))
    assert result.status == 0, result.err

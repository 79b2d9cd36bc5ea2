"""The offline demo: SIMULATED base/secure/insecure models behind a loopback HTTP server,
collected with the real OpenAI-compatible client into a store, analysed and reported.

A workflow above :mod:`~persona_collapse.collect` (collection),
:mod:`~persona_collapse.analysis` and :mod:`~persona_collapse.report` (analysis
and the written report): it starts the server, collects, and hands a study to
:func:`persona_collapse.report.build_report`.

No network and no API key: the server listens on 127.0.0.1 in a child process
(so the client and the server use separate cores) and the client sends a
placeholder key. Personas are 100 synthetic descriptions shipped with the
package (``workflows/data/demo_personas.json``), not the PersonaHub download.

Default grid, chosen to finish in under two minutes on two cores: persona mode
with the logprob method (one request per persona x item, the full rating
distribution; the analysis uses the expected SD of ``reps`` sampled
repetitions at T = 0.1, which matches a sampled run in expectation), and self
mode sampled with ``reps`` repetitions. ``method="sample"`` samples persona
mode too (``personas x 30 x reps`` requests per variant; slower).

The capability control: each variant also answers the generated
``demo-arithmetic`` task (40 four-choice sums, ``reps`` repetitions, asked
once per slot like MMLU; see :mod:`._demo_control`), read as accuracy and
repeat instability against the base (``DIR/capability_control.json``); those
runs go to ``DIR/demo_tasks.db``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..analysis import AnalysisOptions
from ..errors import ConfigError
from ..instruments import DEMO_TASK
from ..protocol import INSECURE, SECURE, ProtocolSettings
from ..report import BASE, FamilySpec, ReportOutput, Study, VariantSources, build_report
from ..stats import BootstrapConfig
from ._demo_control import DemoControl, read_control, write_items

if TYPE_CHECKING:
    from ..collect import RunOptions, RunOutcome

DEFAULT_DIR = "persona-collapse-demo"
DEMO_VARIANTS = (BASE, SECURE, INSECURE)
DEMO_FAMILY = "Simulated model"
DEMO_STORE = "demo.db"
DEMO_TASK_STORE = "demo_tasks.db"
"""The store of the capability-control runs, apart from the questionnaire runs so that
``metrics DIR/demo_tasks.db`` reads all three variants' task runs at once."""
DEMO_TEMPERATURE = 0.1
_KEY_ENV = "PERSONA_COLLAPSE_DEMO_KEY"
_SERVER_START_S = 60.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoConfig:
    """What the demo collects. ``reps``: repetitions per cell (self mode always sampled;
    persona mode sampled with ``method="sample"``, else analysed as ``reps`` repetitions)."""

    folder: Path = Path(DEFAULT_DIR)
    n_personas: int = 100
    reps: int = 10
    method: Literal["logprobs", "sample"] = "logprobs"
    concurrency: int = 64
    seed: int = 0
    quiet: bool = False
    in_process_server: bool = False

    def validate(self) -> None:
        if not 2 <= self.n_personas <= len(demo_personas()):
            raise ConfigError(
                f"--n-personas must be between 2 and {len(demo_personas())} for the demo"
            )
        if self.reps < 2:
            raise ConfigError("--reps must be at least 2 (a spread needs two answers)")
        if self.method not in ("logprobs", "sample"):
            raise ConfigError("--method must be logprobs or sample")
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")


@dataclass(frozen=True)
class DemoOutcome:
    """Where the demo wrote and how long it took; ``control``: the capability control."""

    report: ReportOutput
    control: DemoControl
    store: Path
    requests: int
    collect_s: float
    total_s: float


def demo_personas() -> list[str]:
    """The 100 synthetic persona descriptions shipped for the demo."""
    text = (
        resources.files("persona_collapse.workflows") / "data" / "demo_personas.json"
    ).read_text("utf-8")
    return [str(p) for p in json.loads(text)]


def _serve(conn: Connection, seed: int) -> None:
    """Child process: serve the three SIMULATED variants until the parent says stop."""
    from ..loopback import LoopbackServer
    from ..simulate import SimulatedRespondent

    respondents = {f"sim-{v}": SimulatedRespondent(v, seed=seed) for v in DEMO_VARIANTS}
    with LoopbackServer(respondents) as server:
        conn.send(server.base_url)
        with contextlib.suppress(EOFError):
            conn.recv()


class _ServerProcess:
    """The loopback server in a child process (spawned), stopped on exit."""

    def __init__(self, seed: int) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, seed), daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(_SERVER_START_S):
            self.stop()
            raise ConfigError("the demo's loopback server did not start; try --in-process-server")
        self.base_url = str(self._conn.recv())

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        self._conn.close()


class _ServerThread:
    """The loopback server in this process (a background thread)."""

    def __init__(self, seed: int) -> None:
        from ..loopback import LoopbackServer
        from ..simulate import SimulatedRespondent

        self._server = LoopbackServer(
            {f"sim-{v}": SimulatedRespondent(v, seed=seed) for v in DEMO_VARIANTS}
        )
        self._server.start()
        self.base_url = self._server.base_url

    def stop(self) -> None:
        self._server.stop()


def _collect_run(options: RunOptions, what: str, say: Say) -> RunOutcome:
    from ..collect import run_collection

    say(f"collecting {what} [SIMULATED]")
    outcome = run_collection(options)
    say(
        f"  {outcome.run.run_id}: {outcome.stored} of {outcome.total_slots} slots stored, "
        f"{outcome.stats.requests} requests in {outcome.stats.elapsed_s:.1f} s"
    )
    return outcome


@dataclass
class _Collected:
    """What :func:`_collect` gathered: the study, its task runs (label -> source), requests."""

    study: Study
    tasks: dict[str, str]
    requests: int


def _collect_task(common: RunOptions, label: str, say: Say) -> RunOutcome:
    """The variant's capability-control run: ``demo-arithmetic``, self mode, asked once."""
    return _collect_run(
        replace(
            common,
            instrument=DEMO_TASK,
            store=str(Path(common.store).with_name(DEMO_TASK_STORE)),
            protocol=replace(common.protocol, method="sample"),
            run_id=f"sim-{label}_{DEMO_TASK}_{common.reps}",
        ),
        f"{label}: capability control, {DEMO_TASK}, {common.reps} repetitions",
        say,
    )


def _collect(config: DemoConfig, url: str, personas: Path, say: Say) -> _Collected:
    from ..collect import RunOptions

    store = config.folder / DEMO_STORE
    n, reps, method = config.n_personas, config.reps, config.method
    variants = []
    tasks: dict[str, str] = {}
    requests = 0
    for label in DEMO_VARIANTS:
        common = RunOptions(
            model=f"openai/sim-{label}",
            variant=label,
            family=DEMO_FAMILY,
            base_url=url,
            api_key_env=_KEY_ENV,
            store=str(store),
            concurrency=config.concurrency,
            protocol=ProtocolSettings(temperature=DEMO_TEMPERATURE),
            reps=reps,
            seed=config.seed,
            quiet=config.quiet,
        )
        grid = f"{n}x{reps}" if method == "sample" else f"{n}"
        persona_run = _collect_run(
            replace(
                common,
                personas=str(personas),
                n_personas=n,
                reps=reps,
                protocol=replace(common.protocol, method=method),
                run_id=f"sim-{label}_persona_{method}_{grid}",
            ),
            f"{label}: persona mode, {n} personas, {method}",
            say,
        )
        self_run = _collect_run(
            replace(
                common,
                self_mode=True,
                reps=reps,
                protocol=replace(common.protocol, method="sample"),
                run_id=f"sim-{label}_self_sample_{reps}",
            ),
            f"{label}: self mode, {reps} repetitions",
            say,
        )
        task_run = _collect_task(common, label, say)
        tasks[label] = task_run.source
        requests += persona_run.stats.requests + self_run.stats.requests + task_run.stats.requests
        variants.append(
            VariantSources(
                label=label,
                persona=f"{store}:{persona_run.run.run_id}",
                self_mode=f"{store}:{self_run.run.run_id}",
                tasks=((DEMO_TASK, tasks[label]),),  # study file: tasks = { demo-arithmetic = ... }
            )
        )
    study = Study(
        title="persona-collapse demo: base, secure and insecure variants of a simulated model",
        families=(FamilySpec(DEMO_FAMILY, tuple(variants)),),
        options=AnalysisOptions(
            bootstrap=BootstrapConfig(seed=config.seed),
            expected_reps=reps if method == "logprobs" else None,
            reweight_temperature=DEMO_TEMPERATURE if method == "logprobs" else None,
        ),
        simulated=True,
        origin="",
    )
    return _Collected(study, tasks, requests)


def run_demo(config: DemoConfig, say: Say | None = None) -> DemoOutcome:
    """Serve, collect, analyse and report; returns where everything went and how long it took."""
    tell = say or (lambda _msg: None)
    config.validate()
    start = time.perf_counter()
    folder = config.folder
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"-o {folder} is a file; give a folder for the demo")
    folder.mkdir(parents=True, exist_ok=True)
    personas = folder / "personas.json"
    personas.write_text(
        json.dumps(demo_personas(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    os.environ.setdefault(_KEY_ENV, "sk-demo-loopback-not-a-real-key")
    tell("starting the loopback server with SIMULATED base, secure and insecure respondents")
    server: _ServerProcess | _ServerThread = (
        _ServerThread(config.seed) if config.in_process_server else _ServerProcess(config.seed)
    )
    write_items(folder)
    try:
        tell(f"server at {server.base_url} (127.0.0.1 only; no network, no API key)")
        collected_runs = _collect(config, server.base_url, personas, tell)
    finally:
        server.stop()
    collected = time.perf_counter() - start
    requests = collected_runs.requests
    tell(f"collected {requests} requests in {collected:.1f} s; analysing")
    report = build_report(collected_runs.study, folder, tell)
    (family,) = report.result.families
    control = read_control(collected_runs.tasks, folder, family)
    tell(f"capability control ({DEMO_TASK}) written to {control.file}")
    return DemoOutcome(
        report=report,
        control=control,
        store=folder / DEMO_STORE,
        requests=requests,
        collect_s=collected,
        total_s=time.perf_counter() - start,
    )

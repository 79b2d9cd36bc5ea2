"""The offline demo's capability control: the generated ``demo-arithmetic`` task, read out.

The demo's SIMULATED variants answer the built-in four-choice arithmetic task
(:func:`persona_collapse.instruments.demo_task`; no download) through the same
run machinery as the MMLU control (self mode, sampled, asked once per slot);
this module reads those runs back as task sources and compares each variant
with the base (:func:`persona_collapse.analysis.compare_tasks`: paired
bootstrap over the shared items, as the report's capability table does), so
the demo tells whether the simulated fine-tunes lost capability or only
persona robustness.

Units: accuracies and non-unanimity rates are fractions (0-1); the printed
deltas are variant - base in percentage points, with the 2.5 and 97.5
percentiles of the paired bootstrap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis import AnalysisOptions, compare_tasks
from ..instruments import DEMO_TASK, demo_task, demo_task_json
from ..protocol import BASE
from ..store import load_task_sources

CONTROL_FILE = "capability_control.json"
"""The demo folder's ``compare`` document of the task runs (base against each variant)."""

ITEMS_FILE = f"{DEMO_TASK}.json"
"""The demo folder's copy of the generated item set (the ``--items`` JSON shape)."""


@dataclass(frozen=True)
class DemoControl:
    """The demo's capability control: ``sources`` (variant label -> ``STORE.db:RUN_ID``) and
    ``comparison``, the ``compare`` document (``base`` metrics; per other variant its
    ``metrics`` and paired ``delta``)."""

    sources: dict[str, str]
    comparison: dict[str, Any]
    file: Path

    def lines(self) -> list[str]:
        """One summary line per variant: accuracy (SE), non-unanimity, deltas with CIs."""
        base = self.comparison["base"]
        task = demo_task()
        out = [
            f"capability control ({DEMO_TASK}: {task.n_items} generated four-choice sums, "
            f"{base['n_total'] // max(task.n_items, 1)} repetitions):",
            f"  {BASE}: {_side(base)}",
        ]
        for label, side in self.comparison["variants"].items():
            out.append(f"  {label}: {_side(side['metrics'])}; {_delta(side['delta'])}")
        return out


def _side(doc: Mapping[str, Any]) -> str:
    return (
        f"accuracy {doc['accuracy_all']:.3f} (SE {doc['accuracy_se']:.3f}), "
        f"non-unanimity {doc['non_unanimity_rate']:.3f} (SE {doc['non_unanimity_se']:.3f}), "
        f"format valid {doc['format_valid_rate']:.3f}"
    )


def _delta(delta: Mapping[str, Any]) -> str:
    parts = []
    for key in ("accuracy", "non_unanimity"):
        mark = " (CI excludes 0)" if delta[f"{key}_sig"] else ""
        parts.append(
            f"{key.replace('_', '-')} {100 * delta[key]:+.1f} pp [{100 * delta[f'{key}_lo']:+.1f}, "
            f"{100 * delta[f'{key}_hi']:+.1f}]{mark}"
        )
    return "vs base " + ", ".join(parts)


def write_items(folder: Path) -> Path:
    """Write the generated item set into ``folder`` (for reading, or ``--items``)."""
    path = folder / ITEMS_FILE
    path.write_text(demo_task_json(), encoding="utf-8")
    return path


def read_control(
    sources: Mapping[str, str], folder: Path, options: AnalysisOptions, draws: int
) -> DemoControl:
    """Compare each variant's task run with the base's and write :data:`CONTROL_FILE`.

    ``sources``: variant label -> ``STORE.db:RUN_ID`` of its task run, the base's included;
    ``options`` and ``draws`` (paired bootstrap draws): the study's, so the printed numbers
    are the report's capability table's.
    """
    tasks = {label: load_task_sources(spec)[0] for label, spec in sources.items()}
    others = {label: task for label, task in tasks.items() if label != BASE}
    comparison = compare_tasks(tasks[BASE], others, options, draws=draws)
    # The demo's models are openai/sim-* behind the loopback server: the store cannot tell
    # they are simulated (only sim/ runs say so), the demo can.
    comparison["simulated"] = True
    for doc in (comparison["base"], *(v["metrics"] for v in comparison["variants"].values())):
        doc["simulated"] = True
    path = folder / CONTROL_FILE
    path.write_text(json.dumps(comparison, indent=1, default=float) + "\n", encoding="utf-8")
    return DemoControl(dict(sources), comparison, path)

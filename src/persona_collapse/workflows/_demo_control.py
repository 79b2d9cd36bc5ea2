"""The offline demo's capability control: the generated ``demo-arithmetic`` task, read out.

The demo's SIMULATED variants answer the built-in four-choice arithmetic task
(:func:`persona_collapse.instruments.demo_task`; no download) through the same
run machinery as the MMLU control (self mode, sampled, asked once per slot);
the report compares each variant's task run with the base's
(:func:`persona_collapse.analysis.compare_tasks`: paired bootstrap over the shared
items, its capability table), and this module writes that comparison out and
prints it, so the demo tells whether the simulated fine-tunes lost capability or
only persona robustness.

Units: accuracies and non-unanimity rates are fractions (0-1); the printed
deltas are variant - base in percentage points, with the 2.5 and 97.5
percentiles of the paired bootstrap.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..instruments import DEMO_TASK, demo_task, demo_task_json
from ..protocol import BASE
from ..report import FamilyResult

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


def _comparison(family: FamilyResult) -> dict[str, Any]:
    """The ``compare`` document of the family's :data:`DEMO_TASK` runs, as the report's
    :func:`~persona_collapse.analysis.compare_tasks` made it (copied: the report keeps its own).

    ``warnings``: the family's capability-control warnings (the demo's only task, so
    exactly that comparison's).
    """
    variants = {
        label: {"metrics": result.metrics, "delta": result.delta}
        for label, result in ((lb, v.tasks[DEMO_TASK]) for lb, v in family.variants.items())
        if label != BASE
    }
    doc = {
        "base": family.variants[BASE].tasks[DEMO_TASK].metrics,
        "variants": variants,
        "simulated": True,  # see read_control
        "warnings": list(family.task_warnings),
    }
    return copy.deepcopy(doc)


def read_control(sources: Mapping[str, str], folder: Path, family: FamilyResult) -> DemoControl:
    """Write the report's comparison of each variant's task run with the base's
    (:data:`CONTROL_FILE`) and return it.

    ``sources``: variant label -> ``STORE.db:RUN_ID`` of its task run, the base's included;
    ``family``: the report's analysis of the demo family (its variants' ``tasks`` hold the
    paired comparison of those runs, so the printed numbers are the report's capability
    table's, computed once).
    """
    comparison = _comparison(family)
    # The demo's models are openai/sim-* behind the loopback server: the store cannot tell
    # they are simulated (only sim/ runs say so), the demo can (the document says so too).
    for doc in (comparison["base"], *(v["metrics"] for v in comparison["variants"].values())):
        doc["simulated"] = True
    path = folder / CONTROL_FILE
    path.write_text(json.dumps(comparison, indent=1, default=float) + "\n", encoding="utf-8")
    return DemoControl(dict(sources), comparison, path)

"""The capability control of a study: each variant's task sources, measured and paired with base.

A variant's task sources (``mmlu``, ``gsm8k``, ``tasks`` in the study file)
are measured with :func:`~persona_collapse.analysis.measure_task`; a variant
whose base has a source of the same task name is compared with it by
:func:`~persona_collapse.analysis.compare_tasks` (paired deltas over the items
both share, ``Study.delta_draws`` paired bootstrap draws). Accuracy is
``accuracy_all`` (over every reply, an unparsed reply counting wrong), a share
in [0, 1]; its 95% interval is ``accuracy ± 1.96 SE`` (the two-level
bootstrap SE); the deltas' intervals are the paired percentile intervals.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._downloads import sha256_file
from ..analysis import compare_tasks, measure_task
from ..errors import ConfigError, DataError
from ..instruments import Instrument
from ..store import TaskResponses, load_one_task_source
from ._provenance import SourceRecord, run_is_simulated
from ._study import BASE, TASK_KEYS, FamilySpec, Study

Z95 = 1.959963984540054
"""Normal quantile of a two-sided 95% interval (accuracy ± Z95 · SE)."""


@dataclass(frozen=True)
class TaskResult:
    """One task source of one variant: its ``metrics`` document and its paired delta.

    ``metrics``: :func:`~persona_collapse.analysis.measure_task`'s document;
    ``delta``: the ``delta`` block of :func:`~persona_collapse.analysis.compare_tasks`
    (variant - base: ``accuracy``, ``non_unanimity``, ``gini`` with ``_lo``, ``_hi``,
    ``_sig``; shares, not percent), None for the base and for a variant whose base
    has no source of this task.
    """

    name: str
    source: str
    metrics: dict[str, Any]
    delta: dict[str, Any] | None
    simulated: bool

    @property
    def accuracy(self) -> float:
        return float(self.metrics["accuracy_all"])

    @property
    def accuracy_ci(self) -> tuple[float, float]:
        """The 95% interval of the accuracy: ``accuracy ± 1.96 SE`` (shares)."""
        half = Z95 * float(self.metrics["accuracy_se"])
        return self.accuracy - half, self.accuracy + half

    @property
    def instability(self) -> dict[str, Any]:
        return dict(self.metrics["instability"])


def task_label(name: str) -> str:
    """How tables and figures name a task instrument (``mmlu`` -> ``MMLU``)."""
    return {"mmlu": "MMLU", "gsm8k": "GSM8K"}.get(name, name)


def questionnaire_label(instrument: Instrument) -> str:
    """A questionnaire's short name: the parenthesised end of its title (``MFQ-30``), else its name."""
    found = re.search(r"\(([^()]+)\)\s*$", instrument.title)
    return found.group(1) if found else instrument.name


def _load(spec: str, name: str, where: str) -> TaskResponses:
    """The one task source ``spec`` names; a source of the other known task is refused."""
    try:
        task = load_one_task_source(spec, f"{where}:")
    except DataError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None
    if name != task.instrument and {name, task.instrument} <= set(TASK_KEYS):
        raise ConfigError(
            f"{where}: {task.label} holds {task.instrument} answers, not {name}; "
            "check which source goes where"
        )
    return task


def task_record(
    task: TaskResponses, *, family: str, variant: str, name: str, spec: str, simulated: bool
) -> SourceRecord:
    """Provenance of one task source; ``mean_failures`` is the share of format failures,
    ``missing_share`` the share of rows with nothing parsed (rating -1 in a store)."""
    run = task.run
    path = Path(spec)
    file = path if path.is_file() else None
    failures = float(np.mean(task.replied & ~task.format_valid))
    return SourceRecord(
        family=family,
        variant=variant,
        role=task_label(name),
        label=task.label,
        source=spec,
        model=run.model if run else "",
        backend=run.backend if run else "",
        method="sampled",
        mode="self",
        settings=json.dumps(run.settings, sort_keys=True) if run else "",
        persona_set_hash="",
        protocol_hash=run.protocol_hash if run else "",
        tool_version=run.tool_version if run else "",
        created=run.created if run else "",
        file_name=file.name if file else "",
        sha256=task.sha256 or (sha256_file(file) if file is not None and not run else ""),
        rows=int(task.item_id.size),
        mean_failures=failures,
        missing_share=float(np.mean(~task.format_valid)),
        simulated=simulated or run_is_simulated(run) or task.simulated,
    )


def _by_name(
    spec: FamilySpec, study: Study
) -> tuple[dict[str, dict[str, TaskResponses]], list[SourceRecord]]:
    """``task name -> variant label -> source`` of the family, and their provenance records."""
    loaded: dict[str, dict[str, TaskResponses]] = {}
    records: list[SourceRecord] = []
    for var in spec.variants:
        for name, src in var.tasks:
            where = f"family {spec.name!r} variant {var.label!r} {name}"
            task = _load(src, name, where)
            loaded.setdefault(name, {})[var.label] = task
            records.append(
                task_record(
                    task,
                    family=spec.name,
                    variant=var.label,
                    name=name,
                    spec=src,
                    simulated=study.simulated,
                )
            )
    return loaded, records


def family_tasks(
    spec: FamilySpec, study: Study
) -> tuple[dict[str, dict[str, TaskResult]], list[SourceRecord], list[str]]:
    """Per variant label, ``task name -> TaskResult``; the sources' records; the warnings."""
    loaded, records = _by_name(spec, study)
    out: dict[str, dict[str, TaskResult]] = {var.label: {} for var in spec.variants}
    warnings: list[str] = []
    sources = {(v.label, n): s for v in spec.variants for n, s in v.tasks}
    for name, by_label in loaded.items():
        docs = _measure(by_label, study)
        warnings += docs.pop("_warnings")
        for label, (metrics, delta) in docs.items():
            out[label][name] = TaskResult(
                name=name,
                source=sources[(label, name)],
                metrics=metrics,
                delta=delta,
                simulated=bool(study.simulated or metrics.get("simulated")),
            )
    return out, records, list(dict.fromkeys(warnings))


def _measure(by_label: Mapping[str, TaskResponses], study: Study) -> dict[str, Any]:
    """``label -> (metrics, delta)`` of one task across a family's variants, and ``_warnings``."""
    opts = study.options
    base = by_label.get(BASE)
    others = {lb: t for lb, t in by_label.items() if lb != BASE}
    out: dict[str, Any] = {}
    if base is None:
        for label, task in others.items():
            doc = measure_task(task, opts)
            out[label] = (doc, None)
        out["_warnings"] = [w for doc, _ in out.values() for w in doc["warnings"]] + [
            f"{', '.join(others)}: no base source of this task, so no paired deltas"
        ]
        return out
    compared = compare_tasks(base, others, opts, draws=study.delta_draws)
    out[BASE] = (compared["base"], None)
    for label, block in compared["variants"].items():
        out[label] = (block["metrics"], block["delta"])
    out["_warnings"] = list(compared["warnings"])
    return out

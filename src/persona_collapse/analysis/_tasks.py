"""The capability control's readouts: task sources (MMLU, GSM8K) to accuracy and instability.

:func:`measure_task` gives the ``metrics`` document of one task source,
:func:`compare_tasks` the ``compare`` document of variants against a base
(paired deltas over the items both share). Conventions and bootstraps are
those of :mod:`persona_collapse.stats` (``answer_statistics``,
``task_bootstrap``, ``paired_task_deltas``): accuracy against the gold answer
(over all replies, an unparsed reply counting wrong, and over parsed replies; a slot
no reply reached is left out), the
majority-vote accuracy, and repeat instability (non-unanimity, Gini impurity,
distinct answers) over items with at least two parsed repetitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..instruments import elicitation_of
from ..stats import (
    DELTA_DRAWS,
    TASK_STATISTICS,
    AnswerTable,
    instability,
    paired_task_deltas,
    task_bootstrap,
)
from ..store import TaskResponses, gold_key
from ._options import AnalysisOptions


def answer_table(task: TaskResponses) -> AnswerTable:
    """Answer counts per item (ascending ids) and answer level (lexicographic within item).

    An answer level is correct when any row with that answer is correct;
    ``unparsed`` counts the replies that did not parse (a slot no reply reached,
    a transport loss, is in no count: it says nothing about the model); items
    are stratified by their subject (one stratum when none is known).
    """
    items, item_pos = np.unique(task.item_id, return_inverse=True)
    parsed = task.format_valid
    pairs = pd.DataFrame(
        {
            "item": item_pos[parsed],
            "answer": task.answer[parsed].astype(str),
            "ok": task.correct[parsed],
        }
    )
    grouped = pairs.groupby(["item", "answer"], sort=True).agg(n=("ok", "size"), ok=("ok", "any"))
    item_of = grouped.index.get_level_values("item").to_numpy(dtype=np.int64)
    level = grouped.groupby(level="item").cumcount().to_numpy(dtype=np.int64)
    width = int(level.max()) + 1 if level.size else 1
    counts = np.zeros((items.size, width))
    correct = np.zeros((items.size, width), dtype=bool)
    counts[item_of, level] = grouped["n"].to_numpy(dtype=np.float64)
    correct[item_of, level] = grouped["ok"].to_numpy(dtype=bool)
    failed = task.replied & ~parsed
    unparsed = np.bincount(item_pos[failed], minlength=items.size).astype(np.float64)
    first = np.zeros(items.size, dtype=np.int64)
    first[item_pos[::-1]] = np.arange(item_pos.size)[::-1]
    _, strata = np.unique(task.subject[first].astype(str), return_inverse=True)
    return AnswerTable(items, counts, correct, unparsed, strata.astype(np.int64))


def n_answers(task: TaskResponses) -> int | None:
    """The number of possible answers ``k`` of the task, from its instrument's elicitation
    (a built-in task's as declared, MMLU: 4 letters, with no items loaded). None: free
    answers (e.g. GSM8K's numbers) or no instrument of that name (a user's item set)."""
    how = elicitation_of(task.instrument)
    return (len(how.answers) or None) if how is not None else None


def task_warnings(task: TaskResponses) -> list[str]:
    """What a reader must know: transport losses, format failures, uneven repetitions, notes."""
    out = [f"{task.label}: {note}" for note in task.notes]
    lost = int(np.sum(~task.replied))
    if lost:
        out.append(
            f"{task.label}: {lost} of {task.replied.size} slots have no reply (transport "
            "losses, left out of every readout); resume the run to fill them"
        )
    failed = int(np.sum(task.replied & ~task.format_valid))
    if failed:
        out.append(
            f"{task.label}: {failed} replies did not parse (format failures, counted wrong "
            "by accuracy_all and left out of the other readouts)"
        )
    reps = np.unique(np.bincount(np.unique(task.item_id, return_inverse=True)[1]))
    if reps.size > 1:
        out.append(f"{task.label}: items have unequal repetitions ({reps.min()}-{reps.max()})")
    return out


def measure_task(task: TaskResponses, options: AnalysisOptions | None = None) -> dict[str, Any]:
    """The ``metrics`` document of one task source.

    Keys: ``source``, ``instrument``, ``n_total`` (rows), ``n_replied``,
    ``n_valid`` (rows with a parsed answer), ``n_items`` (items with one),
    ``reply_rate``, ``format_valid_rate`` (parsed / replied), the readouts of
    :data:`~persona_collapse.stats.TASK_STATISTICS`, their SEs
    (``accuracy_se``, ``non_unanimity_se``, ``gini_se``, each also as
    ``*_se_item`` and ``*_se_rep``; ``options.bootstrap.persona_draws`` item
    draws, stratified by subject, and ``repetition_draws`` repetition draws),
    ``instability`` (the scale-free block shared with the questionnaires),
    ``simulated`` and ``warnings``.
    """
    return _measure(task, answer_table(task), options or AnalysisOptions())


def _measure(task: TaskResponses, table: AnswerTable, opts: AnalysisOptions) -> dict[str, Any]:
    """:func:`measure_task` of ``task`` whose :func:`answer_table` is ``table`` (built once by
    a caller that needs it again)."""
    n_total, n_replied, n_valid = (
        task.item_id.size,
        int(task.replied.sum()),
        int(task.format_valid.sum()),
    )
    if n_valid == 0:
        raise DataError(f"{task.label}: no reply parsed, so there is nothing to measure")
    doc: dict[str, Any] = {
        "source": task.label,
        "instrument": task.instrument,
        "n_total": n_total,
        "n_replied": n_replied,
        "n_valid": n_valid,
        "n_items": int(np.sum(table.counts.sum(axis=1) > 0)),
        "reply_rate": n_replied / n_total,
        "format_valid_rate": n_valid / n_replied,
    }
    stats = table.statistics()
    doc.update({k: stats[k] for k in TASK_STATISTICS})
    doc.update(task_bootstrap(table, opts.bootstrap))
    doc["instability"] = instability(table.counts, n_answers(task)).to_dict()
    doc["simulated"] = task.simulated
    doc["warnings"] = task_warnings(task)
    return doc


def _check_golds(base: TaskResponses, variant: TaskResponses) -> None:
    """DataError when an item both sources hold has a different gold answer on each side."""
    theirs, ours = variant.item_golds(), base.item_golds()
    differ = [
        i for i in sorted(theirs.keys() & ours.keys()) if gold_key(theirs[i]) != gold_key(ours[i])
    ]
    if differ:
        i = differ[0]
        raise DataError(
            f"{variant.label} and {base.label} disagree on the gold answer of {len(differ)} "
            f"shared items (item {i}: {theirs[i]!r} vs {ours[i]!r}); the same item id must be "
            "the same question, so fix the gold or renumber the items"
        )


def _unshared(base: AnswerTable, variant: AnswerTable, label: str, n_shared: int) -> str | None:
    """The warning that items are on one side only (None when every item is on both)."""
    only_base = base.item_ids.size - n_shared
    only_variant = variant.item_ids.size - n_shared
    if not (only_base or only_variant):
        return None
    return (
        f"{label}: {only_base} base items and {only_variant} variant items are not on both "
        f"sides; the deltas use the {n_shared} shared items"
    )


def compare_tasks(
    base: TaskResponses,
    variants: Mapping[str, TaskResponses],
    options: AnalysisOptions | None = None,
    *,
    draws: int = DELTA_DRAWS,
) -> dict[str, Any]:
    """The ``compare`` document of task sources: each side's metrics and, per variant,
    ``delta`` (:func:`~persona_collapse.stats.paired_task_deltas`, ``draws`` paired draws
    seeded by ``options.bootstrap.seed``) over the items it shares with the base."""
    opts = options or AnalysisOptions()
    if draws < 2:
        raise DataError(f"a paired bootstrap needs at least 2 draws, not {draws}")
    base_table = answer_table(base)
    base_doc = _measure(base, base_table, opts)
    out: dict[str, Any] = {"base": base_doc, "variants": {}}
    warnings = list(base_doc["warnings"])
    for side, (label, variant) in enumerate(variants.items(), start=1):
        if variant.instrument != base.instrument:
            warnings.append(
                f"{variant.label} ({variant.instrument}) and {base.label} ({base.instrument}) "
                "name different item sets; the deltas use the item ids both hold"
            )
        _check_golds(base, variant)
        table = answer_table(variant)
        doc = _measure(variant, table, opts)
        delta = paired_task_deltas(
            base_table, table, draws=draws, seed=opts.bootstrap.seed, side=side
        )
        if delta["n_items"] == 0:
            raise DataError(f"{variant.label} and {base.label} share no item ids")
        left = _unshared(base_table, table, label, int(delta["n_items"]))
        if left:
            warnings.append(left)
        warnings += doc["warnings"]
        out["variants"][label] = {"metrics": doc, "delta": delta}
    out["simulated"] = bool(base.simulated or any(v.simulated for v in variants.values()))
    out["warnings"] = list(dict.fromkeys(warnings))
    return out

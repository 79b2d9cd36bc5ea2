"""The capability control's reading: persona-specific change, or broad degradation?

The rule, per non-base variant with at least one task compared with its base:

* **capability fell** when any task's paired accuracy delta (variant - base,
  over the shared items) is negative and its 95% paired bootstrap interval
  excludes 0 (``accuracy_sig``). Then the finding is flagged: a change in S
  and R may be broad degradation, not something specific to role-play
  (*partly* when another task's accuracy stayed within its interval: reading
  ``mixed``). The finding gives the fall relative to the base's accuracy
  beside the change in R, so a reader can weigh a small capability loss
  against a large R drop; the rule itself does not weigh them;
* otherwise, when R clearly dropped (more than :data:`._clear.Z_CLEAR` SE
  against base, the verdict's own test :func:`._clear.r_dropped`), the drop
  came while every task's accuracy stayed within its interval:
  **persona-specific, not broad degradation**;
* otherwise there is no clear R drop to explain, and the finding only reports
  the accuracies.

A significant rise in a task's non-unanimity is named as well (the answers
became less stable outside role-play too), but it does not change the
reading: the reading turns on capability, the rival explanation the control
tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..stats import OVERALL
from ._clear import r_dropped
from ._results import FamilyResult, VariantResult
from ._task_results import TaskResult, task_label


@dataclass(frozen=True)
class CapabilityReading:
    """One variant's reading: ``fell`` (every compared task's accuracy fell significantly),
    ``mixed`` (some fell, some stayed within their CI), ``persona-specific`` (R clearly
    dropped, no accuracy fell) or ``no R drop`` (no accuracy fell, and no R drop to explain)."""

    label: str
    reading: str
    text: str
    fell: tuple[str, ...] = ()
    """The tasks whose accuracy fell significantly (display names)."""

    @property
    def flagged(self) -> bool:
        return self.reading in ("fell", "mixed")


def _pp(value: float) -> str:
    return f"{100 * value:+.1f}".replace("-", "−")


def _accuracy(task: TaskResult) -> str:
    """``MMLU −2.3 pp, 95% CI [−5.4, +0.7]`` of a compared task."""
    d = task.delta
    assert d is not None
    return (
        f"{task_label(task.name)} {_pp(d['accuracy'])} pp, "
        f"95% CI [{_pp(d['accuracy_lo'])}, {_pp(d['accuracy_hi'])}]"
    )


def _unstable(tasks: list[TaskResult]) -> str:
    """A note on tasks whose non-unanimity rose significantly ("" when none)."""
    rose = [
        t
        for t in tasks
        if t.delta and t.delta["non_unanimity_sig"] and t.delta["non_unanimity"] > 0
    ]
    if not rose:
        return ""
    parts = ", ".join(
        f"{task_label(t.name)} {_pp(t.delta['non_unanimity'])} pp" for t in rose if t.delta
    )
    return f"; repetitions also less unanimous on the tasks (non-unanimity {parts})"


def r_change(var: VariantResult) -> tuple[float, bool]:
    """``(ΔR in percent, whether R clearly dropped)`` of a variant against its base."""
    assert var.change is not None
    delta, delta_se = var.change.at(OVERALL)
    d = float(delta["R"])
    return d, r_dropped(d, float(delta_se["R"]))[1]


def _relative(task: TaskResult) -> str:
    """The accuracy change as a share of the base's accuracy (``−5.9% of base``)."""
    assert task.delta is not None
    base = task.accuracy - float(task.delta["accuracy"])
    return (
        f"{100 * float(task.delta['accuracy']) / base:+.1f}%".replace("-", "−") if base else "n/a"
    )


def capability_reading(var: VariantResult) -> CapabilityReading | None:
    """The reading of one variant (None: the base, or no task compared with the base)."""
    tasks = [t for t in var.tasks.values() if t.delta is not None]
    if var.change is None or not tasks:
        return None
    fell = [t for t in tasks if t.delta and t.delta["accuracy_sig"] and t.delta["accuracy"] < 0]
    kept = [t for t in tasks if t not in fell]
    d_r, dropped = r_change(var)
    note = _unstable(tasks)
    lead = f"R fell {abs(d_r):.0f}%" if dropped else f"no clear R drop (ΔR {d_r:+.1f}%)"
    within = (
        f"{' and '.join(task_label(t.name) for t in kept)} accuracy stayed within "
        + ("its CI " if len(kept) == 1 else "their CIs ")
        + f"({'; '.join(_accuracy(t) for t in kept)})"
    )
    if fell:
        lost = "; ".join(f"{_accuracy(t)}, {_relative(t)} of base" for t in fell)
        text = f"{lead} while {within}, but " if kept else f"{lead}; "
        text += (
            f"capability fell too ({lost}): the S/R change may be "
            + ("partly " if kept else "")
            + "broad degradation, not persona-specific"
        )
        names = tuple(task_label(t.name) for t in fell)
        return CapabilityReading(var.label, "mixed" if kept else "fell", text + note, names)
    if dropped:
        text = f"{lead} while {within}: persona-specific, not broad degradation"
        return CapabilityReading(var.label, "persona-specific", text + note)
    return CapabilityReading(var.label, "no R drop", f"{lead}; {within}{note}")


def capability_readings(family: FamilyResult) -> list[CapabilityReading]:
    """The reading of every non-base variant with a compared task, in variant order."""
    found = (capability_reading(var) for var in family.variants.values())
    return [r for r in found if r is not None]


def capability_headline(readings: list[CapabilityReading]) -> str:
    """The headline's note on the capability control ("" when no variant was compared)."""
    specific = [r.label for r in readings if r.reading == "persona-specific"]
    out = ""
    if specific:
        out += (
            f"; capability control: the R drop of {', '.join(specific)} is persona-specific "
            "(task accuracy within its CI), not broad degradation"
        )
    for r in readings:
        if r.flagged:
            partly = "partly " if r.reading == "mixed" else ""
            out += (
                f"; capability fell too in {r.label} ({', '.join(r.fell)}): the S/R change "
                f"may be {partly}broad degradation"
            )
    return out

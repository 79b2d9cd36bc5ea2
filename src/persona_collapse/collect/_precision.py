"""How precise a planned run will be: a reference measurement scaled to its size, and pilots.

A plan scales the SEs of a reference measurement (the published GPT-4o base,
or a pilot run of the user's own) to the planned personas and repetitions:
SE(S) ~ 1/sqrt(personas); SE(R)/R ~ 1/sqrt(personas x repetitions) for sampled
runs, 1/sqrt(personas) for logprob runs. The minimum detectable change
between two runs is sqrt(2) x 2 SE, in percent of the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..analysis import measure_responses
from ..store import Responses

PUBLISHED_RETRIES_PER_SLOT = 0.0075
"""Mean failed one-token attempts per slot in the published data of the 15 base models
(Costa et al. 2025/2026, 30,000 slots each; from 0 to 0.065 per model). Fine-tuned variants
can need far more (DeepSeek-V3.1-insecure: 0.99): plan those from a pilot."""


@dataclass(frozen=True)
class PrecisionReference:
    """A measurement whose SEs are scaled to the planned size.

    ``reps`` is the repetitions per cell behind it (1 for logprob data).
    """

    label: str
    n_personas: int
    reps: int
    S: float
    S_se: float
    R: float
    R_se: float


PUBLISHED_REFERENCE = PrecisionReference(
    label="published GPT-4o base (Costa & Vicente 2026: 100 personas x 10 repetitions)",
    n_personas=100,
    reps=10,
    S=0.79,
    S_se=0.03,
    R=9.75,
    R_se=0.42,
)
"""The paper's table entries for GPT-4o base: S 0.79 +- 0.03, R 9.75 +- 0.42."""


@dataclass(frozen=True)
class PilotFacts:
    """What a pilot run tells a plan: its precision and its retry and fallback rates."""

    reference: PrecisionReference
    retries_per_slot: float
    fallback_per_slot: float
    retries_known: bool = True
    """False when the pilot has no ``failures`` counts: the plan uses the published rate."""


def _scaled_se(
    reference: PrecisionReference, n_personas: int, reps: int, *, logprobs: bool
) -> dict[str, float]:
    n = max(n_personas, 1)
    s_se = reference.S_se * math.sqrt(reference.n_personas / n)
    if logprobs:
        r_factor = math.sqrt(reference.n_personas / n)
    else:
        r_factor = math.sqrt(reference.n_personas * reference.reps / (n * max(reps, 1)))
    return {"S": s_se, "R": reference.R_se * r_factor}


def precision(
    reference: PrecisionReference,
    personas: int,
    reps: int,
    *,
    logprobs: bool,
    self_mode: bool,
    task: bool = False,
) -> tuple[dict[str, float], dict[str, float], str]:
    """The scaled SEs of S and R, their 2 SE in percent of the value (one run), and a note
    saying where they come from. Self mode has no S (one "persona"): its percentage is NaN;
    a task has neither S nor R (all NaN).
    """
    se = _scaled_se(reference, personas, reps, logprobs=logprobs)
    one_run = {k: _relative_2se(se[k], getattr(reference, k)) for k in ("S", "R")}
    if self_mode:
        one_run["S"] = math.nan
    if task:
        se = dict.fromkeys(se, math.nan)
        one_run = dict.fromkeys(one_run, math.nan)
    note = f"{reference.label}, SE(S) ~ 1/sqrt(personas), SE(R)/R ~ " + (
        "1/sqrt(personas)" if logprobs else "1/sqrt(personas x repetitions)"
    )
    return se, one_run, note


def _relative_2se(se: float, value: float) -> float:
    """``2 x SE / value`` in percent; NaN where undefined (no SE, or a value of 0)."""
    if not (math.isfinite(se) and math.isfinite(value)) or value == 0:
        return math.nan
    return 200.0 * se / value


def pilot_notes(
    pilot: PilotFacts | None, one_run: dict[str, float], *, logprobs: bool, self_mode: bool
) -> list[str]:
    """What a plan could not take from its pilot: failure counts, a detectable change."""
    if pilot is None:
        return []
    notes: list[str] = []
    label = pilot.reference.label
    if not pilot.retries_known and not logprobs:
        notes.append(
            f"pilot {label} has no failures column: planned with the published retry rate "
            f"({PUBLISHED_RETRIES_PER_SLOT:g} failed attempts per slot)"
        )
    defined = [v for k, v in one_run.items() if not (self_mode and k == "S")]
    if not all(math.isfinite(v) for v in defined):
        notes.append(
            f"pilot {label} gives no standard error or an S or R of 0 (one persona, one "
            "answer per cell, or every answer alike): the detectable change is unknown; "
            "use a pilot of 2 or more personas and repetitions"
        )
    return notes


def pilot_facts(responses: Responses, *, max_attempts: int = 10) -> PilotFacts:
    """A pilot run's measured S, R and their SEs, its size, and its retry and fallback rates.

    Retries: the mean of ``failures``; a source without such counts (no
    ``failures`` column, or none known) has ``retries_known`` False and a plan
    uses :data:`PUBLISHED_RETRIES_PER_SLOT` instead. Fallback: the share of
    slots whose ``failures`` reached ``max_attempts`` (those asked one longer
    generation). SEs of a pilot too small to have one (one persona, one
    answer) are NaN; a plan then says the detectable change is unknown.
    """
    meas = measure_responses(responses)
    frame = responses.frame
    failures = frame["failures"].to_numpy(dtype=np.float64, na_value=np.nan)
    known = failures[~np.isnan(failures)]
    retries_known = bool(known.size) and responses.has_failures
    retries = float(known.mean()) if retries_known else 0.0
    fallback = float(np.mean(known >= max_attempts)) if retries_known else 0.0
    if responses.method == "logprobs":
        reps = 1
    elif responses.run is not None and int(responses.run.settings.get("reps") or 0) > 0:
        reps = int(responses.run.settings["reps"])
    else:
        per_cell = frame.groupby(["persona_id", "question_id"]).size().to_numpy()
        reps = int(np.bincount(per_cell).argmax()) if per_cell.size else 1
    reference = PrecisionReference(
        label=f"{responses.label} ({meas.n_personas} personas x {reps} repetitions)",
        n_personas=meas.n_personas,
        reps=reps,
        S=float(meas.S[0]),
        S_se=float(meas.S_se[0]),
        R=float(meas.R[0]),
        R_se=float(meas.R_se[0]),
    )
    return PilotFacts(reference, retries, fallback, retries_known=retries_known)

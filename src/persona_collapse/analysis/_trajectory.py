"""Trajectories: S, sigma_bar and R with their diagnostics across the checkpoints of a fine-tune.

Only a series of checkpoints tells "the effect never happened" from "it
happened and the ceiling crushed it": each checkpoint is measured as
``metrics`` measures a source (same options, same bootstrap seed), with its
noise floor, corrected S and scale usage. A saturated checkpoint whose S sits
clearly below an earlier peak is flagged (:func:`ceiling_falls`).

Steps are training steps (optimizer updates), read from ``stepNNNN`` in a
source's label (:func:`step_from_label`) or given by the caller.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from ..stats import Measurement, ScaleUsage
from ..store import Responses, load_sources
from ._diagnostics import is_saturated, scale_usage
from ._measure import measure_responses, metrics_document
from ._options import AnalysisOptions, check_method

_STEP = re.compile(r"(?:^|[^a-z])step[-_]?(\d+)(?![0-9])", re.IGNORECASE)
_GIVEN_STEP = re.compile(r"(\d+)=(.+)", re.DOTALL)

FALL_SES = 1.0
"""A saturated checkpoint is flagged when its S is below an earlier peak by more than this
many standard errors of the difference, sqrt(SE_peak^2 + SE^2) (a hint, not a test)."""


def step_from_label(label: str) -> int | None:
    """The training step in a source's label or file name (``...-step0800_temp01`` -> 800)."""
    found = _STEP.findall(label)
    return int(found[-1]) if found else None


def split_step(spec: str) -> tuple[int | None, str]:
    """``STEP=SOURCE`` -> ``(STEP, SOURCE)``; a plain SOURCE -> ``(None, SOURCE)``."""
    given = _GIVEN_STEP.fullmatch(spec)
    return (int(given.group(1)), given.group(2)) if given else (None, spec)


def load_checkpoints(
    specs: Sequence[str], options: AnalysisOptions | None = None
) -> list[tuple[int, Responses]]:
    """``(step, responses)`` of every ``[STEP=]SOURCE``; the step from the name when not given.

    A SOURCE naming several response sets (a folder, a store without a run id)
    gives one checkpoint per set, each with the step in its label.
    """
    opts = options or AnalysisOptions()
    out: list[tuple[int, Responses]] = []
    for spec in specs:
        given, source = split_step(spec)
        loaded = load_sources(source, instrument=opts.instrument)
        if given is not None and len(loaded) != 1:
            raise ConfigError(
                f"{spec}: STEP= names one checkpoint, but {source} holds {len(loaded)} sources"
            )
        for resp in loaded:
            check_method(resp, opts)
            step = given if given is not None else step_from_label(resp.label)
            if step is None:
                raise ConfigError(
                    f"{resp.label}: no training step in its name (stepNNNN); "
                    f"give it as STEP=SOURCE, e.g. 0={source}"
                )
            out.append((step, resp))
    return out


@dataclass(frozen=True)
class TrajectoryPoint:
    """One checkpoint: its step, its measurement, its scale usage and its metrics document.

    ``document`` is :func:`metrics_document` of the checkpoint (S, sigma_bar, R
    with SEs, ``S_corrected``, ``S_noise_floor``, ``scale_usage``, ``warnings``).
    """

    step: int
    label: str
    measurement: Measurement
    usage: ScaleUsage
    document: dict[str, Any]
    ceiling_fall: bool = False

    @property
    def saturated(self) -> bool:
        return is_saturated(self.usage)

    def to_dict(self) -> dict[str, Any]:
        return (
            {"step": self.step}
            | self.document
            | {"saturated": self.saturated, "ceiling_fall": self.ceiling_fall}
        )


@dataclass(frozen=True)
class Trajectory:
    """Checkpoints in step order and what a reader must know about the series."""

    points: tuple[TrajectoryPoint, ...]
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``trajectory``: ``{"points": [...], "warnings": [...]}``."""
        return {"points": [p.to_dict() for p in self.points], "warnings": list(self.warnings)}


def ceiling_falls(points: Sequence[TrajectoryPoint]) -> list[tuple[int, str]]:
    """``(index, warning)`` of every saturated checkpoint whose S fell below an earlier peak.

    The fall must exceed :data:`FALL_SES` standard errors of the difference
    (the two points' S SEs in quadrature). Such a non-monotone S under
    saturation may be the ceiling crushing the effect rather than a recovery.
    """
    out: list[tuple[int, str]] = []
    for i, point in enumerate(points):
        if i == 0 or not point.saturated:
            continue
        peak = max(points[:i], key=lambda p: float(p.measurement.S[0]))
        S, S_se = float(point.measurement.S[0]), float(point.measurement.S_se[0])
        top, top_se = float(peak.measurement.S[0]), float(peak.measurement.S_se[0])
        if not top - S > FALL_SES * math.hypot(S_se, top_se):
            continue
        out.append(
            (
                i,
                f"S fell from {top:.2f} (step {peak.step}) to {S:.2f} (step {point.step}) while "
                f"{point.usage.top1_share:.0%} of answers were {point.usage.top1_rating}: a rise "
                "then a fall under saturation may be the ceiling crushing the effect, not recovery",
            )
        )
    return out


def measure_trajectory(
    sources: Sequence[tuple[int, Responses]], options: AnalysisOptions | None = None
) -> Trajectory:
    """Measure every ``(step, responses)`` checkpoint, in step order, with its diagnostics.

    Each point is measured like ``metrics`` with the same ``options``; the
    trajectory's warnings are every point's own warnings followed by the
    ceiling falls (:func:`ceiling_falls`). Steps must be distinct.
    """
    if not sources:
        raise ConfigError("a trajectory needs at least one checkpoint, e.g. 0=base.csv")
    steps = [step for step, _ in sources]
    repeated = sorted({s for s in steps if steps.count(s) > 1})
    if repeated:
        raise ConfigError(
            f"step {repeated[0]} is given twice; give each checkpoint its own step (STEP=SOURCE)"
        )
    opts = options or AnalysisOptions()
    points = []
    for step, resp in sorted(sources, key=lambda pair: pair[0]):
        meas = measure_responses(resp, opts)
        usage = scale_usage(resp, opts)
        doc = metrics_document(resp.label, meas, resp, opts, usage=usage)
        points.append(TrajectoryPoint(step, resp.label, meas, usage, doc))
    falls = ceiling_falls(points)
    for i, _ in falls:
        points[i] = replace(points[i], ceiling_fall=True)
    warnings = [w for p in points for w in p.document["warnings"]] + [w for _, w in falls]
    return Trajectory(points=tuple(points), warnings=tuple(warnings))

"""From loaded responses to numbers: measurements, comparisons, cell views, temperature curves.

* :func:`measure_responses`: S, sigma_bar and R (overall and per subscale) with SEs;
* :func:`compare_responses`: variants against a base (relative changes, excess);
* :func:`source_compliance`: how much of the data is the model answering at all;
* :func:`profile_responses`: self or across-persona profiles;
* :func:`cell_view`: cell means and answer shares (what the report's figures draw);
* :func:`temperature_curves`: S(T) and R(T) of a logprob source;
* :func:`scale_usage`, :func:`saturation_warning`, :func:`noise_floor_warning`:
  whether S can be read at all (the scale's ceiling, repetition noise);
* :func:`measure_trajectory`: S, R and those diagnostics across training checkpoints;
* :func:`measure_task`, :func:`compare_tasks`: the capability control (MMLU, GSM8K):
  accuracy and repeat instability of task sources, paired deltas against a base.

Every one of them reads the same cubes (:func:`rating_cube`,
:func:`distribution_cube`), so metrics and figures rest on one distribution.
No I/O beyond what :mod:`persona_collapse.store` loads.
"""

from ._cell_view import CellView, cell_view
from ._compare import Comparison, compare_responses
from ._compliance import (
    COMPLIANCE_KEYS,
    DIGIT_MASS_MIN,
    MISSING_SHARE_MAX,
    NOT_ANSWERING,
    TRUNCATED_SHARE_MAX,
    Compliance,
    source_compliance,
)
from ._cube import DistributionCube, distribution_cube, rating_cube
from ._curves import (
    CURVE_POINT_KEYS,
    DEFAULT_TEMPERATURES,
    SPREADS,
    spread_description,
    temperature_curves,
)
from ._diagnostics import (
    NOISE_FLOOR_SES,
    SATURATION_SHARE,
    at_noise_floor,
    is_saturated,
    noise_floor_warning,
    saturation_warning,
    scale_usage,
)
from ._measure import (
    MIN_PERSONAS,
    measure_responses,
    metrics_document,
    profile_responses,
    profile_saturation,
    source_warnings,
)
from ._options import AnalysisOptions, check_method, instrument_for
from ._repeat_instability import repeat_instability
from ._tasks import answer_table, compare_tasks, measure_task, task_warnings
from ._trajectory import (
    FALL_SES,
    Trajectory,
    TrajectoryPoint,
    ceiling_falls,
    load_checkpoints,
    measure_trajectory,
    split_step,
    step_from_label,
)

__all__ = [
    "COMPLIANCE_KEYS",
    "CURVE_POINT_KEYS",
    "DEFAULT_TEMPERATURES",
    "DIGIT_MASS_MIN",
    "FALL_SES",
    "MIN_PERSONAS",
    "MISSING_SHARE_MAX",
    "NOISE_FLOOR_SES",
    "NOT_ANSWERING",
    "SATURATION_SHARE",
    "SPREADS",
    "TRUNCATED_SHARE_MAX",
    "AnalysisOptions",
    "CellView",
    "Comparison",
    "Compliance",
    "DistributionCube",
    "Trajectory",
    "TrajectoryPoint",
    "answer_table",
    "at_noise_floor",
    "ceiling_falls",
    "cell_view",
    "check_method",
    "compare_responses",
    "compare_tasks",
    "distribution_cube",
    "instrument_for",
    "is_saturated",
    "load_checkpoints",
    "measure_responses",
    "measure_task",
    "measure_trajectory",
    "metrics_document",
    "noise_floor_warning",
    "profile_responses",
    "profile_saturation",
    "rating_cube",
    "repeat_instability",
    "saturation_warning",
    "scale_usage",
    "source_compliance",
    "source_warnings",
    "split_step",
    "spread_description",
    "step_from_label",
    "task_warnings",
    "temperature_curves",
]

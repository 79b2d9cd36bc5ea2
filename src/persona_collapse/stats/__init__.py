"""Estimators of moral susceptibility S, sigma_bar and robustness R, profiles and comparisons,
the noise floor of S and scale usage; the capability control's task readouts (accuracy,
repeat instability) with their two-level and paired bootstraps.

Pure numpy; no I/O except the packaged band data. Conventions are stated in
each module (ddof = 1 everywhere unless said otherwise; PROTOCOL.md section 3).
"""

from ._band import Band, BandModel, published_band
from ._bootstrap import MAX_DRAWS, BootstrapConfig, Draws
from ._cells import MISSING_RATING, RatingCube, cell_means, cell_sds
from ._changes import (
    CORRECTED,
    METRICS,
    Change,
    FamilySummary,
    coefficient_of_variation_by_metric,
    labels_in_order,
    misalignment_excess,
    relative_change,
    summarise_families,
)
from ._distributions import (
    distribution_mean,
    distribution_sd,
    expected_sample_sd,
    reweight_spellings,
    reweight_temperature,
)
from ._estimators import (
    OVERALL,
    Measurement,
    MetricValues,
    group_matrix,
    item_susceptibility,
    measure,
    measure_distributions,
)
from ._instability import (
    MIN_REPEATS,
    TASK_STATISTICS,
    Instability,
    answer_statistics,
    cell_gini,
    instability,
    level_counts,
)
from ._noise_floor import cell_noise, corrected_susceptibility, item_noise_floor
from ._profiles import (
    Profile,
    ProfileValue,
    coefficient_of_variation,
    persona_profile,
    persona_subscale_means,
    saturation,
    score_reversed,
    self_profile,
)
from ._task_bootstrap import (
    DELTA_DRAWS,
    DELTA_STATISTICS,
    SE_STATISTICS,
    AnswerTable,
    item_weights,
    paired_task_deltas,
    task_bootstrap,
)
from ._usage import ScaleUsage, entropy_bits, kl_divergence_bits

__all__ = [
    "CORRECTED",
    "DELTA_DRAWS",
    "DELTA_STATISTICS",
    "MAX_DRAWS",
    "METRICS",
    "MIN_REPEATS",
    "MISSING_RATING",
    "OVERALL",
    "SE_STATISTICS",
    "TASK_STATISTICS",
    "AnswerTable",
    "Band",
    "BandModel",
    "BootstrapConfig",
    "Change",
    "Draws",
    "FamilySummary",
    "Instability",
    "Measurement",
    "MetricValues",
    "Profile",
    "ProfileValue",
    "RatingCube",
    "ScaleUsage",
    "answer_statistics",
    "cell_gini",
    "cell_means",
    "cell_noise",
    "cell_sds",
    "coefficient_of_variation",
    "coefficient_of_variation_by_metric",
    "corrected_susceptibility",
    "distribution_mean",
    "distribution_sd",
    "entropy_bits",
    "expected_sample_sd",
    "group_matrix",
    "instability",
    "item_noise_floor",
    "item_susceptibility",
    "item_weights",
    "kl_divergence_bits",
    "labels_in_order",
    "level_counts",
    "measure",
    "measure_distributions",
    "misalignment_excess",
    "paired_task_deltas",
    "persona_profile",
    "persona_subscale_means",
    "published_band",
    "relative_change",
    "reweight_spellings",
    "reweight_temperature",
    "saturation",
    "score_reversed",
    "self_profile",
    "summarise_families",
    "task_bootstrap",
]

"""Estimators of moral susceptibility S, sigma_bar and robustness R, profiles and comparisons,
the noise floor of S and scale usage.

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
from ._usage import ScaleUsage, entropy_bits, kl_divergence_bits

__all__ = [
    "CORRECTED",
    "MAX_DRAWS",
    "METRICS",
    "MISSING_RATING",
    "OVERALL",
    "Band",
    "BandModel",
    "BootstrapConfig",
    "Change",
    "Draws",
    "FamilySummary",
    "Measurement",
    "MetricValues",
    "Profile",
    "ProfileValue",
    "RatingCube",
    "ScaleUsage",
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
    "item_noise_floor",
    "item_susceptibility",
    "kl_divergence_bits",
    "labels_in_order",
    "measure",
    "measure_distributions",
    "misalignment_excess",
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
]

"""persona-collapse: moral susceptibility and robustness of LLM persona role-play.

The curated public API; subpackages (``analysis``, ``stats``, ``store``, ``instruments``,
``personas``, ``protocol``, ``backends``, ``collect``) expose more.
"""

from ._version import __version__
from .analysis import (
    AnalysisOptions,
    Comparison,
    compare_responses,
    measure_responses,
    metrics_document,
    profile_responses,
)
from .errors import ConfigError, DataError, UserError
from .instruments import Instrument, load_instrument
from .stats import BootstrapConfig, Measurement, MetricValues

__all__ = [
    "AnalysisOptions",
    "BootstrapConfig",
    "Comparison",
    "ConfigError",
    "DataError",
    "Instrument",
    "Measurement",
    "MetricValues",
    "UserError",
    "__version__",
    "compare_responses",
    "load_instrument",
    "measure_responses",
    "metrics_document",
    "profile_responses",
]

"""persona-collapse: moral susceptibility and robustness of LLM persona role-play.

The curated public API; subpackages (``analysis``, ``stats``, ``store``, ``instruments``,
``personas``, ``protocol``, ``backends``, ``collect``) expose more. Names load on
first use, so ``import persona_collapse`` (and the command line's start) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import ConfigError, DataError, UserError

if TYPE_CHECKING:
    from .analysis import (
        AnalysisOptions,
        Comparison,
        compare_responses,
        measure_responses,
        metrics_document,
        profile_responses,
    )
    from .instruments import Instrument, load_instrument
    from .stats import BootstrapConfig, Measurement, MetricValues

#: Public names loaded on first use: name -> subpackage.
_LAZY = {
    "AnalysisOptions": "analysis",
    "Comparison": "analysis",
    "compare_responses": "analysis",
    "measure_responses": "analysis",
    "metrics_document": "analysis",
    "profile_responses": "analysis",
    "Instrument": "instruments",
    "load_instrument": "instruments",
    "BootstrapConfig": "stats",
    "Measurement": "stats",
    "MetricValues": "stats",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

"""persona-collapse: moral susceptibility and robustness of LLM persona role-play.

The curated public API, one name per concept: :func:`collect` (also inside a
running event loop), :func:`collect_async`, :func:`measure` (returns
:class:`Metrics`) and :func:`compare` (returns :class:`ComparisonResult` of
:class:`Delta` values); see ``docs/python.md``. Subpackages expose the
lower-level pieces: ``analysis`` (``measure_responses``, ``compare_responses``,
``metrics_document``, ``Comparison``), ``stats`` (``Measurement``), ``store``,
``instruments``, ``personas``, ``protocol``, ``backends``, ``collect``.
Names load on first use, so ``import persona_collapse`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import ConfigError, DataError, UserError

if TYPE_CHECKING:
    from . import collect
    from ._notebook import ComparisonResult, Delta, Metrics, compare, measure
    from .analysis import AnalysisOptions, profile_responses
    from .collect import CollectedRun, collect_async
    from .instruments import Instrument, load_instrument
    from .stats import BootstrapConfig, MetricValues

_LAZY = {
    "AnalysisOptions": "analysis",
    "profile_responses": "analysis",
    "Instrument": "instruments",
    "load_instrument": "instruments",
    "BootstrapConfig": "stats",
    "MetricValues": "stats",
    "CollectedRun": "collect",
    "collect_async": "collect",
    "ComparisonResult": "_notebook",
    "Delta": "_notebook",
    "Metrics": "_notebook",
    "compare": "_notebook",
    "measure": "_notebook",
}


def __getattr__(name: str) -> Any:
    if name == "collect":  # the subpackage, callable: collect(model, **options)
        return importlib.import_module(".collect", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'persona_collapse' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"collect"})


__all__ = [
    "AnalysisOptions",
    "BootstrapConfig",
    "CollectedRun",
    "ComparisonResult",
    "ConfigError",
    "DataError",
    "Delta",
    "Instrument",
    "MetricValues",
    "Metrics",
    "UserError",
    "__version__",
    "collect",
    "collect_async",
    "compare",
    "load_instrument",
    "measure",
    "profile_responses",
]

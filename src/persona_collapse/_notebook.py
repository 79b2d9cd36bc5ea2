"""The Python API for scripts and notebooks: measure and compare any source.

Collection lives in :mod:`persona_collapse.collect` (``persona_collapse.collect(model,
**options)`` and ``collect_async``, both returning a ``CollectedRun`` handle);
this module reads whatever a SOURCE can be, that handle included:

* :func:`measure` returns :class:`Metrics` (S, sigma_bar and R with SEs, per
  foundation too) of one SOURCE: a ``STORE:RUN_ID`` string, a path, a
  :class:`CollectedRun`, an inspect ``.eval`` log, or a DataFrame with
  ``persona_id, question_id, run_index, rating``.
* :func:`compare` measures variants against a base: :class:`ComparisonResult`
  with relative changes (percent) and their SEs.

Analysis options are keyword arguments: those of
:class:`~persona_collapse.analysis.AnalysisOptions` (``instrument``,
``reweight_temperature``, ``expected_reps``) plus the bootstrap's ``seed``,
``persona_draws`` and ``repetition_draws``. Heavy modules load on first use;
collection's (HTTP clients) only when a collected run is measured.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from .errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from .analysis import AnalysisOptions, Comparison
    from .collect import CollectedRun, RunOutcome
    from .stats import Measurement, MetricValues
    from .store import Responses

Source = Union[str, "os.PathLike[str]", "CollectedRun", "RunOutcome", "pd.DataFrame", "Responses"]
"""Anything :func:`measure` and :func:`compare` accept as one source."""

_ANALYSIS_KEYS = (
    "instrument",
    "reweight_temperature",
    "expected_reps",
    "seed",
    "persona_draws",
    "repetition_draws",
)


# --------------------------------------------------------------------------- measure


@dataclass(frozen=True)
class Metrics:
    """S, sigma_bar and R with standard errors, overall and per foundation.

    ``foundations`` maps each subscale to its :class:`~persona_collapse.stats.MetricValues`
    (same attribute names); ``warnings`` says what a reader must know (few
    personas, an incomplete run); ``measurement`` keeps the bootstrap replicates.
    """

    label: str
    S: float
    S_se: float
    sigma_bar: float
    sigma_bar_se: float
    R: float
    R_se: float
    n_personas: int
    n_items: int
    foundations: dict[str, MetricValues]
    warnings: list[str] = field(default_factory=list)
    measurement: Measurement | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``persona-collapse metrics`` prints for this source."""
        from .analysis import metrics_document

        assert self.measurement is not None
        doc = metrics_document(self.label, self.measurement)
        doc["warnings"] = list(self.warnings)
        return doc

    def to_frame(self) -> pd.DataFrame:
        """One row per group (``all`` then the foundations): S, S_se, sigma_bar, ..., R_se."""
        import pandas as pd

        rows = {"all": self._overall().to_dict()}
        rows |= {name: values.to_dict() for name, values in self.foundations.items()}
        return pd.DataFrame.from_dict(rows, orient="index")

    def _overall(self) -> MetricValues:
        from .stats import MetricValues

        return MetricValues(self.S, self.S_se, self.sigma_bar, self.sigma_bar_se, self.R, self.R_se)


def _analysis_options(**kwargs: Any) -> AnalysisOptions:
    from .analysis import AnalysisOptions
    from .stats import BootstrapConfig

    unknown = sorted(set(kwargs) - set(_ANALYSIS_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown analysis option(s) {', '.join(unknown)}; valid options: "
            f"{', '.join(_ANALYSIS_KEYS)}"
        )
    boot: dict[str, Any] = {}
    if kwargs.get("seed") is not None:
        boot["seed"] = int(kwargs["seed"])
    for name in ("persona_draws", "repetition_draws"):
        if kwargs.get(name) is not None:
            boot[name] = int(kwargs[name])
    return AnalysisOptions(
        bootstrap=BootstrapConfig(**boot),
        instrument=kwargs.get("instrument"),
        expected_reps=kwargs.get("expected_reps"),
        reweight_temperature=kwargs.get("reweight_temperature"),
    )


def responses(
    source: Source, *, instrument: str | None = None, label: str | None = None
) -> Responses:
    """The one response table ``source`` names (a SOURCE holding several runs is refused)."""
    from .store import Responses, load_sources, responses_from_frame

    if isinstance(source, Responses):
        return source
    if "persona_collapse.collect" in sys.modules:  # else no handle can exist yet
        from .collect import CollectedRun, RunOutcome

        if isinstance(source, (CollectedRun, RunOutcome)):
            return responses(source.source, instrument=instrument, label=label)
    if isinstance(source, (str, os.PathLike)):
        spec = os.fspath(source)
    else:
        import pandas as pd

        if not isinstance(source, pd.DataFrame):
            raise DataError(
                f"cannot measure a {type(source).__name__}; give a SOURCE string or path, "
                "a CollectedRun, or a DataFrame with persona_id, question_id, run_index, rating"
            )
        return responses_from_frame(
            source, label=label or "frame", instrument=instrument or "mfq30"
        )
    tables = load_sources(spec, instrument=instrument)
    if len(tables) != 1:
        names = ", ".join(t.label for t in tables[:5])
        raise DataError(
            f"{spec} holds {len(tables)} response tables ({names}); name one "
            "(e.g. STORE.db:RUN_ID or one file)"
        )
    table = tables[0]
    return dataclasses.replace(table, label=label) if label else table


def _metrics(resp: Responses, meas: Measurement, warnings: list[str]) -> Metrics:
    return Metrics(
        label=resp.label,
        **meas.values().to_dict(),
        n_personas=meas.n_personas,
        n_items=meas.n_items,
        foundations={name: meas.values(name) for name in meas.subscales},
        warnings=warnings,
        measurement=meas,
    )


def measure(source: Source, **options: Any) -> Metrics:
    """S, sigma_bar and R (overall and per foundation) of one source, with bootstrap SEs.

    ``source``: ``"STORE.db:RUN_ID"``, a CSV / Parquet / ``.eval`` path, a
    ``CollectedRun``, or a DataFrame (``persona_id, question_id,
    run_index, rating``). Options: ``instrument``, ``seed``, ``persona_draws``,
    ``repetition_draws``, and
    for logprob runs ``reweight_temperature`` and ``expected_reps``.
    """
    from .analysis import check_method, measure_responses, source_warnings

    opts = _analysis_options(**options)
    resp = responses(source, instrument=opts.instrument)
    check_method(resp, opts)
    meas = measure_responses(resp, opts)
    return _metrics(resp, meas, source_warnings(resp, meas))


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class Delta:
    """Relative change (percent) of a variant against the base, with SEs."""

    S_pct: float
    S_pct_se: float
    sigma_bar_pct: float
    sigma_bar_pct_se: float
    R_pct: float
    R_pct_se: float

    @classmethod
    def of(cls, change: Any, group: str) -> Delta:
        value, se = change.at(group)
        return cls(value["S"], se["S"], value["sigma_bar"], se["sigma_bar"], value["R"], se["R"])


@dataclass(frozen=True)
class VariantComparison:
    """One variant of a :func:`compare`: its metrics and its change against the base.

    (Not :class:`persona_collapse.report.VariantResult`, a variant's analysed data in a study.)
    """

    metrics: Metrics
    delta: Delta
    foundations: dict[str, Delta]
    outside_band: bool
    left_band: bool


@dataclass(frozen=True)
class ComparisonResult:
    """The base's metrics, each variant's metrics and change, the excess when there is one."""

    base: Metrics
    variants: dict[str, VariantComparison]
    excess: Delta | None
    """Insecure minus secure change, in percentage points (with ``secure`` and ``insecure``)."""
    warnings: list[str]
    comparison: Comparison = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``persona-collapse compare`` prints."""
        return self.comparison.to_dict()

    def to_frame(self) -> pd.DataFrame:
        """One row per variant: delta_S_pct, its SE, delta_R_pct, its SE, band flags."""
        import pandas as pd

        rows = {
            label: {
                "S": v.metrics.S,
                "R": v.metrics.R,
                "delta_S_pct": v.delta.S_pct,
                "delta_S_pct_se": v.delta.S_pct_se,
                "delta_R_pct": v.delta.R_pct,
                "delta_R_pct_se": v.delta.R_pct_se,
                "outside_band": v.outside_band,
            }
            for label, v in self.variants.items()
        }
        return pd.DataFrame.from_dict(rows, orient="index")


def compare(
    base: Source,
    variants: Mapping[str, Source] | None = None,
    /,
    *,
    analysis: Mapping[str, Any] | None = None,
    **named: Source,
) -> ComparisonResult:
    """Measure ``base`` and each variant; relative changes with paired-bootstrap SEs.

    Variants by keyword (``compare(base, secure=..., insecure=...)``) or as a
    mapping (``compare(base, {"secure": ...})``); with both ``secure`` and
    ``insecure`` the misalignment excess (percentage points) is reported.
    ``analysis``: options as for :func:`measure` (``seed``, ``persona_draws``, ...).
    """
    from .analysis import check_method, compare_responses
    from .stats import published_band

    chosen = dict(variants or {})
    overlap = sorted(set(chosen) & set(named))
    if overlap:
        raise ConfigError(f"variant(s) {', '.join(overlap)} given twice")
    chosen |= named
    if not chosen:
        raise ConfigError("compare needs at least one variant, e.g. compare(base, insecure=...)")
    opts = _analysis_options(**dict(analysis or {}))
    base_resp = responses(base, instrument=opts.instrument, label=None)
    resp = {
        name: responses(src, instrument=opts.instrument, label=None) for name, src in chosen.items()
    }
    for table in (base_resp, *resp.values()):
        check_method(table, opts)
    comp = compare_responses(base_resp, resp, opts)
    band = published_band()
    base_S = float(comp.base.S[0])
    base_metrics = _metrics(base_resp, comp.base, list(comp.source_warnings.get("base", [])))
    out: dict[str, VariantComparison] = {}
    for name, (_label, meas, change) in comp.variants.items():
        S = float(meas.S[0])
        out[name] = VariantComparison(
            metrics=_metrics(resp[name], meas, list(comp.source_warnings.get(name, []))),
            delta=Delta.of(change, "all"),
            foundations={g: Delta.of(change, g) for g in meas.subscales},
            outside_band=band.outside(S),
            left_band=band.left(base_S, S),
        )
    excess = None if comp.excess is None else Delta.of(comp.excess, "all")
    return ComparisonResult(
        base=base_metrics,
        variants=out,
        excess=excess,
        warnings=list(comp.warnings),
        comparison=comp,
    )

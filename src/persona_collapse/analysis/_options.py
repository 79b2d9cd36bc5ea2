"""What an analysis is asked to do: bootstrap, instrument, cell spread, re-weighting temperature."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..instruments import Instrument, load_instrument
from ..stats import BootstrapConfig
from ..store import Responses


@dataclass(frozen=True)
class AnalysisOptions:
    """Options shared by ``metrics``, ``profile``, ``compare``, ``curves`` and ``report``.

    ``instrument``: overrides the instrument recorded with the source (CSV files
    carry none and default to MFQ-30). ``expected_reps``: for logprob runs, use
    the expected ddof = 1 SD of that many sampled repetitions as the cell spread
    instead of the exact population SD. ``reweight_temperature``: for logprob
    runs, re-weight the stored T = 1 distributions to this temperature first,
    p_T(k) ∝ p_1(k)^(1/T) (dimensionless, > 0; ``None`` = as stored). This is
    an analysis-time re-weighting, not the sampling temperature of a run
    (:attr:`persona_collapse.collect.RunOptions.temperature`).
    """

    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    instrument: str | None = None
    expected_reps: int | None = None
    reweight_temperature: float | None = None


def instrument_for(responses: Responses, options: AnalysisOptions) -> Instrument:
    """The instrument to analyse ``responses`` with: the option, else the recorded one, else MFQ-30."""
    return load_instrument(options.instrument or responses.instrument or "mfq30")

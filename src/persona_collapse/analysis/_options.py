"""What an analysis is asked to do: bootstrap, instrument, cell spread, re-weighting temperature."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError
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
    (``persona_collapse.collect.RunOptions.protocol.temperature``).
    """

    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    instrument: str | None = None
    expected_reps: int | None = None
    reweight_temperature: float | None = None

    def __post_init__(self) -> None:
        """Refuse values no analysis can use (:class:`ConfigError` naming the option)."""
        if self.expected_reps is not None and not (
            isinstance(self.expected_reps, int) and self.expected_reps >= 1
        ):
            raise ConfigError(
                f"--expected-reps must be a whole number of repetitions >= 1, "
                f"not {self.expected_reps}"
            )
        t = self.reweight_temperature
        if t is not None and not (math.isfinite(t) and t > 0):
            raise ConfigError(f"--temperature must be a positive finite number (e.g. 0.5), not {t}")

    @property
    def reweights(self) -> bool:
        """Whether these options change logprob distributions (temperature or expected reps)."""
        return self.expected_reps is not None or self.reweight_temperature is not None


def check_method(responses: Responses, options: AnalysisOptions) -> None:
    """Refuse logprob-only options (``--temperature``, ``--expected-reps``) on sampled data.

    Sampled ratings carry no distribution to re-weight, so those options would
    silently change nothing.
    """
    if options.reweights and responses.method != "logprobs":
        given = [
            name
            for name, value in (
                ("--temperature", options.reweight_temperature),
                ("--expected-reps", options.expected_reps),
            )
            if value is not None
        ]
        raise ConfigError(
            f"{' and '.join(given)} apply to logprob runs only, and {responses.label} holds "
            "sampled ratings; drop the option for this source"
        )


def instrument_for(responses: Responses, options: AnalysisOptions) -> Instrument:
    """The instrument to analyse ``responses`` with: the option, else the recorded one, else MFQ-30."""
    return load_instrument(options.instrument or responses.instrument or "mfq30")

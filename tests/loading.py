"""Measuring a published-format file through the public loading path (for tests)."""

from __future__ import annotations

from pathlib import Path

from persona_collapse.analysis import AnalysisOptions, measure_responses
from persona_collapse.stats import BootstrapConfig, Measurement
from persona_collapse.store import load_sources


def measure_file(
    path: str | Path, *, persona_draws: int = 2000, repetition_draws: int = 400
) -> Measurement:
    (responses,) = load_sources(str(path))
    return measure_responses(
        responses,
        AnalysisOptions(
            BootstrapConfig(persona_draws=persona_draws, repetition_draws=repetition_draws)
        ),
    )

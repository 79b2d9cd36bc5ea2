"""Repeat instability of a questionnaire source: do identical repetitions give the same rating?

The questionnaire analog of the capability control's task instability, over
(persona, item) cells (self mode: item cells), so MFQ, BFI-44, MMLU and GSM8K
share one scale-free measure (``mean_gini_norm``).
"""

from __future__ import annotations

import numpy as np

from ..stats import Instability, instability, level_counts
from ..store import Responses
from ._cube import rating_cube
from ._options import AnalysisOptions, instrument_for


def repeat_instability(
    responses: Responses, options: AnalysisOptions | None = None
) -> Instability | None:
    """:class:`~persona_collapse.stats.Instability` of a sampled source's valid ratings.

    Cells are those of the rating cube (personas with an empty cell left out,
    as for S and R); a cell counts with at least two valid ratings;
    ``mean_gini_norm`` divides by ``1 - 1/k``, ``k`` the scale's number of
    values (MFQ-30: 6, BFI-44: 5). None for logprob sources (no repetitions).
    """
    if responses.method == "logprobs":
        return None
    instrument = instrument_for(responses, options or AnalysisOptions())
    cube = rating_cube(responses, instrument)
    values = np.asarray(instrument.scale.values, dtype=np.float64)
    counts = level_counts(cube.ratings, values).reshape(-1, values.size)
    return instability(counts, instrument.scale.size)

"""Compliance: how much of a source's data is the model answering the questionnaire at all.

S and R are computed from the answers that parse (sampling) or from the
digit distribution renormalised over the scale (logprobs). Both hide a model
that mostly says something else: a first token "When" with 87% of the
probability still yields a tidy digit distribution. These shares say how much
was hidden:

* ``digit_mass``: mean, over logprob cells with a returned top-k, of the
  first-token probability on the scale digits (every spelling summed: the
  ``spellings`` the runner keeps in each response's ``extra``). A cell whose
  extra has no ``spellings`` (stored by an older version) is left out; null
  for sampled sources and when no cell tells.
* ``truncated_share``: share of those logprob cells where some scale digit
  was not among the returned top-k alternatives (``extra.absent`` non-empty):
  its probability was taken as 0. Null for sampled sources.
* ``nondigit_attempt_share``: sampled sources, share of attempts that were
  not a scale digit: ``sum(failures) / sum(attempts)`` where a slot made
  ``failures + 1`` attempts when it holds a rating and ``failures`` when it
  is missing (the runner counts the failed fallback as a failure). Null for
  logprob sources and files without a ``failures`` column.
* ``fallback_share``: sampled sources, share of slots answered by the longer
  fallback generation (``extra.fallback`` and a valid rating). Null for
  logprob sources and for files without the store's extras (published CSVs).
* ``missing_share``: share of stored slots without a rating (-1).

All shares are fractions in [0, 1] of the rows stored (slots never asked are
the "incomplete" warning's business, not these).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..protocol import MISSING_RATING
from ..store import Responses

DIGIT_MASS_MIN = 0.5
"""Below this mean first-token digit probability a source gets the compliance warning."""

MISSING_SHARE_MAX = 0.05
"""Above this share of missing slots a source gets the compliance warning."""

TRUNCATED_SHARE_MAX = 0.05
"""Above this share of logprob cells with a digit outside the top-k, the compliance warning."""

NOT_ANSWERING = "S and R then describe a model that mostly is not answering"

COMPLIANCE_KEYS = (
    "digit_mass",
    "truncated_share",
    "nondigit_attempt_share",
    "fallback_share",
    "missing_share",
)
"""The keys of ``metrics``' ``compliance`` object, in display order."""


@dataclass(frozen=True)
class Compliance:
    """The compliance shares of one source (see the module docstring); None: not applicable
    or not recorded. ``n_slots``: stored rows; ``n_logprob_cells``: logprob rows with a
    returned top-k."""

    digit_mass: float | None
    truncated_share: float | None
    nondigit_attempt_share: float | None
    fallback_share: float | None
    missing_share: float | None
    n_slots: int
    n_logprob_cells: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def problems(self) -> list[str]:
        """The thresholds this source crosses, as short phrases (empty when none)."""
        out: list[str] = []
        if self.digit_mass is not None and self.digit_mass < DIGIT_MASS_MIN:
            out.append(
                f"mean first-token probability on the scale digits {self.digit_mass:.2f} "
                f"(below {DIGIT_MASS_MIN})"
            )
        if self.missing_share is not None and self.missing_share > MISSING_SHARE_MAX:
            out.append(
                f"{self.missing_share:.0%} of slots without a rating (above {MISSING_SHARE_MAX:.0%})"
            )
        if self.truncated_share is not None and self.truncated_share > TRUNCATED_SHARE_MAX:
            out.append(
                f"in {self.truncated_share:.0%} of logprob cells a scale digit lay outside the "
                f"returned top-k and counted as probability 0 (above {TRUNCATED_SHARE_MAX:.0%}; "
                "ask for more with --top-logprobs where the server allows)"
            )
        return out

    def warning(self, label: str) -> str | None:
        """The compliance warning of source ``label``, or None when no threshold is crossed."""
        problems = self.problems()
        if not problems:
            return None
        return f"{label}: poor compliance: {'; '.join(problems)}; {NOT_ANSWERING}"


def _share(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator > 0 else None


def _logprob_shares(extras: Sequence[Any]) -> tuple[float | None, float | None, int]:
    """``(digit_mass, truncated_share, n_cells)`` over the rows whose extra holds a top-k."""
    cells = [e for e in extras if isinstance(e, dict) and "absent" in e]
    if not cells:
        return None, None, 0
    truncated = np.fromiter((len(e["absent"] or ()) > 0 for e in cells), bool, len(cells))
    told = [e for e in cells if "spellings" in e]
    digit_mass: float | None = None
    if told:
        counts = np.fromiter((len(e["spellings"] or ()) for e in told), np.int64, len(told))
        logprobs = np.fromiter(
            (float(lp) for e in told for _value, lp in (e["spellings"] or ())),
            np.float64,
            int(counts.sum()),
        )
        cell_of = np.repeat(np.arange(len(told)), counts)
        mass = np.bincount(cell_of, weights=np.exp(logprobs), minlength=len(told))
        digit_mass = float(np.clip(mass, 0.0, 1.0).mean())
    return digit_mass, float(truncated.mean()), len(cells)


def source_compliance(responses: Responses) -> Compliance:
    """The compliance shares of one loaded source (module docstring)."""
    frame = responses.frame
    n = len(frame)
    ratings = frame["rating"].to_numpy(dtype=np.int64)
    missing = ratings == MISSING_RATING
    missing_share = _share(missing.sum(), n)
    extras = frame["extra"].tolist()
    if responses.method == "logprobs":
        digit_mass, truncated_share, n_cells = _logprob_shares(extras)
        return Compliance(digit_mass, truncated_share, None, None, missing_share, n, n_cells)
    failures = frame["failures"]
    nondigit: float | None = None
    if n and not failures.isna().all():
        known = ~failures.isna().to_numpy()
        fails = failures.to_numpy(dtype=np.float64, na_value=0.0)[known]
        attempts = fails + (~missing[known])
        nondigit = _share(fails.sum(), attempts.sum())
    has_extras = responses.run is not None or any(e is not None for e in extras)
    fallback: float | None = None
    if has_extras and n:
        used = np.fromiter(
            (isinstance(e, dict) and bool(e.get("fallback")) for e in extras), bool, n
        )
        fallback = _share((used & ~missing).sum(), n)
    return Compliance(None, None, nondigit, fallback, missing_share, n, 0)

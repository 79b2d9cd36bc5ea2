"""What a collection session did, and the paragraph ``run`` prints about it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..store import RunInfo
from ._collector import CollectStats
from ._progress import format_cost


@dataclass
class RunOutcome:
    """What a session did. ``source`` is ``STORE:RUN_ID`` for ``metrics``."""

    run: RunInfo
    store_path: str
    total_slots: int
    stored: int
    stats: CollectStats
    priced: bool
    simulated: bool
    notes: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        return f"{self.store_path}:{self.run.run_id}"

    @property
    def complete(self) -> bool:
        return self.stored >= self.total_slots

    def summary(self) -> str:
        """One paragraph: slots filled, missing, failures, wall time, rate, cost."""
        st = self.stats
        run = self.run
        sim = " [SIMULATED data]" if self.simulated else ""
        head = (
            f"run {run.run_id} ({run.model}, {run.mode} mode, {run.method}){sim}: "
            f"{self.stored} of {self.total_slots} slots stored ({st.done} this session)"
        )
        cost = format_cost(st.cost_usd if self.priced else None)
        body = (
            f"{st.missing} missing (rating -1), {st.failures} unparseable attempts, "
            f"{st.retries} transport retries ({st.rate_limited} after rate limits); "
            f"{st.requests} requests in {st.elapsed_s:.1f} s ({st.requests_per_s:.1f} req/s); "
            f"tokens {st.prompt_tokens} in / {st.completion_tokens} out, estimated cost {cost}."
        )
        return " ".join([head + ";", body + _tail(self), *self.notes])


def _tail(outcome: RunOutcome) -> str:
    """Why the session stopped short, and how to go on (empty when it is complete)."""
    reason = outcome.stats.stop_reason
    if reason == "max-cost":
        return (
            " Stopped before exceeding --max-cost; run the same command again "
            "(a higher --max-cost) to continue."
        )
    if reason == "interrupted":
        return " Interrupted; run the same command again to resume."
    if not outcome.complete:
        return " Incomplete; run the same command again to resume."
    return ""

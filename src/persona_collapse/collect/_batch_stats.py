"""The counters of a batch run (:class:`BatchStats`) and the summary's batch sentences."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._collector import CollectStats


@dataclass
class BatchStats(CollectStats):
    """:class:`CollectStats` plus the batch counters shown in the progress line and summary.

    ``round``: the batch round in progress; ``batches``: batch id -> its latest
    state (this session's and adopted ones); ``adopted``: batches found in the
    store and adopted; ``created``: batches this session created;
    ``saved_usd``: what the same tokens would have cost more at the direct price;
    ``ignored_lines``: result lines naming no request of their batch;
    ``conflicting``: requests answered twice, differently (asked again);
    ``gone``: batches whose results answered 404 (their requests asked again).
    """

    round: int = 0
    batches: dict[str, str] = field(default_factory=dict)
    adopted: int = 0
    created: int = 0
    saved_usd: float = 0.0
    ignored_lines: int = 0
    conflicting: int = 0
    gone: int = 0

    def progress_counts(self) -> str:
        states: dict[str, int] = {}
        for state in self.batches.values():
            states[state] = states.get(state, 0) + 1
        what = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"
        return (
            f"round {self.round} batches {len(self.batches)} ({what}) "
            f"failures {self.failures} missing {self.missing}"
        )


def batch_note(stats: BatchStats, *, priced: bool) -> str:
    """The summary's batch sentences: rounds, batches created and adopted, the discount saved,
    and the result lines not taken as answers."""
    saved = f"${stats.saved_usd:.2f}" if priced else "unknown (no known price)"
    note = (
        f"Batch API: {stats.round} rounds, {stats.created} batches created, "
        f"{stats.adopted} adopted from an earlier session; the batch discount saved {saved}."
    )
    if stats.ignored_lines:
        note += (
            f" {stats.ignored_lines} result lines named requests their batch never sent "
            "and were ignored."
        )
    if stats.conflicting:
        note += (
            f" {stats.conflicting} requests were answered twice with different answers "
            "and asked again."
        )
    if stats.gone:
        note += f" The results of {stats.gone} batches were gone (HTTP 404) and asked again."
    return note

"""One summary row per run of a store: what ``persona-collapse runs`` lists.

Read with one grouped query over ``responses`` (no response is loaded into
memory), so a store of millions of answers lists at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..instruments import load_instrument
from ..protocol import MISSING_RATING
from ._records import RunInfo
from ._sqlite import ResponseStore

_TALLY = f"""
SELECT run_id,
       COUNT(*),
       SUM(CASE WHEN rating = {MISSING_RATING} THEN 1 ELSE 0 END),
       SUM(prompt_tokens),
       SUM(completion_tokens),
       COUNT(prompt_tokens),
       MAX(collected_at),
       COUNT(DISTINCT persona_id),
       COUNT(DISTINCT item_id),
       MAX(repetition)
FROM responses GROUP BY run_id
"""


@dataclass(frozen=True)
class RunSummary:
    """A run's record and its progress.

    ``slots_done``: stored slots (a missing rating counts as done: it was
    asked); ``slots_total``: personas x items x repetitions the record plans
    (at least ``slots_done``); ``missing``: stored slots with no rating (-1).
    ``prompt_tokens`` / ``completion_tokens``: sums over the slots that
    recorded them, ``tokens_known`` how many did (imported files record none).
    ``updated``: the latest answer's ``collected_at`` as written, else
    ``created``.
    """

    run: RunInfo
    slots_done: int
    slots_total: int
    missing: int
    prompt_tokens: int
    completion_tokens: int
    tokens_known: int
    updated: str

    @property
    def simulated(self) -> bool:
        """Whether the run holds SIMULATED answers (a ``sim/`` model)."""
        return bool(self.run.settings.get("simulated")) or self.run.backend == "sim"

    @property
    def remaining(self) -> int:
        return max(self.slots_total - self.slots_done, 0)

    def to_dict(self) -> dict[str, Any]:
        run = self.run
        return {
            "run_id": run.run_id,
            "model": run.model,
            "method": run.method,
            "mode": run.mode,
            "variant": run.variant,
            "family": run.family,
            "instrument": run.instrument,
            "slots_done": self.slots_done,
            "slots_total": self.slots_total,
            "remaining": self.remaining,
            "missing": self.missing,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_known": self.tokens_known,
            "created": run.created,
            "updated": self.updated,
            "simulated": self.simulated,
            "imported_from": run.source,
        }


def _n_items(run: RunInfo, stored_items: int) -> int:
    try:
        return load_instrument(run.instrument).n_items
    except (UserError, OSError):  # an instrument file no longer at hand
        return stored_items


def _planned(run: RunInfo, personas: int, items: int, max_rep: int) -> int:
    settings = run.settings
    if run.mode == "persona" and int(settings.get("n_personas") or 0) > 0:
        personas = int(settings["n_personas"])
    if run.mode == "self":
        personas = 1
    reps = 1 if run.method == "logprobs" else int(settings.get("reps") or 0) or max_rep
    return personas * _n_items(run, items) * max(reps, 1)


def run_summaries(store: ResponseStore) -> list[RunSummary]:
    """One :class:`RunSummary` per run of ``store``, oldest first (ties by id)."""
    with store.connection() as conn:
        tallies = {row[0]: row[1:] for row in conn.execute(_TALLY).fetchall()}
    out: list[RunSummary] = []
    for run in store.list_runs():
        done, missing, p_tok, c_tok, known, last, personas, items, max_rep = tallies.get(
            run.run_id, (0, 0, None, None, 0, None, 0, 0, 0)
        )
        total = _planned(run, int(personas), int(items), int(max_rep or 0))
        out.append(
            RunSummary(
                run=run,
                slots_done=int(done),
                slots_total=max(total, int(done)),
                missing=int(missing or 0),
                prompt_tokens=int(p_tok or 0),
                completion_tokens=int(c_tok or 0),
                tokens_known=int(known or 0),
                updated=str(last) if last else run.created,
            )
        )
    return out

"""Collecting answers: plan the grid of slots, ask them concurrently, store each as it arrives.

* :func:`plan_slots` / :func:`slot_grid`: the slots (persona, item, repetition)
  of a run, minus those already stored.
* :class:`BackoffPolicy` and :class:`AdaptiveWindow`: the retry and
  rate-limit policy (offline-testable).
* :class:`Transport`: the one gate every model request goes through (window,
  retries, Retry-After, the :class:`CostBudget`, counters); collection and
  ``verify`` (subject and judge) send through it.
* :class:`Collector`: the asyncio runner of the published sampling and logprob
  protocols.
* :func:`run_collection`: a whole ``persona-collapse run`` session, its cells
  run by the :class:`Executor` the :class:`RunOptions` choose (direct, batch,
  Ray; :func:`executor_name`, :func:`register_executor`).
* :func:`collect` / :func:`collect_async`: the same from Python (notebooks too);
  the package itself is callable: ``persona_collapse.collect(model, **options)``.
* :func:`plan_run`: what a run will ask, cost and resolve (``plan``; no network).
"""

from ..store import DEFAULT_STORE
from ._api import CollectedRun, collect, collect_async, make_callable
from ._batch import DEFAULT_BATCH_POLL_S
from ._collector import (
    CollectConfig,
    Collector,
    CollectStats,
    local_timestamp,
    request_seed,
)
from ._cost_plan import (
    CostPlan,
    estimate_tokens,
    plan_run,
)
from ._executors import (
    BatchExecutor,
    CollectJob,
    DirectExecutor,
    Executor,
    SlotRunner,
    executor_class,
    executor_name,
    open_executor,
    refuse_impossible,
    refuse_options_of_batch,
    register_executor,
)
from ._outcome import RunOutcome
from ._plan import SELF_PERSONA_ID, Slot, plan_slots, slot_grid
from ._policy import (
    DEFAULT_MAX_RETRY_AFTER_S,
    AdaptiveWindow,
    BackoffPolicy,
    GiveUp,
    ResumeLater,
    RetryPlan,
    RetryWait,
)
from ._precision import (
    PUBLISHED_REFERENCE,
    PilotFacts,
    PrecisionReference,
    pilot_facts,
)
from ._progress import ProgressDisplay, ShownStats, Timed, choose_mode, format_cost
from ._record import (
    build_run_info,
    collection_run_id,
    persona_source_label,
    run_mismatch,
    run_settings,
)
from ._run_options import (
    MAX_SLOTS,
    OPENAI_MAX_TOP_LOGPROBS,
    PROTOCOL_KEYWORDS,
    RunOptions,
    official_openai,
)
from ._run_session import prepare_run, run_collection
from ._signals import terminate_as_interrupt
from ._topup import persona_prefix_hash
from ._traffic import RequestTally, TrafficCounters, TrafficStats, pause_note
from ._transport import CostBudget, Pricing, Transport, TransportStop

make_callable(__name__)  # persona_collapse.collect(model, **options)

__all__ = [
    "DEFAULT_BATCH_POLL_S",
    "DEFAULT_MAX_RETRY_AFTER_S",
    "DEFAULT_STORE",
    "MAX_SLOTS",
    "OPENAI_MAX_TOP_LOGPROBS",
    "PROTOCOL_KEYWORDS",
    "PUBLISHED_REFERENCE",
    "SELF_PERSONA_ID",
    "AdaptiveWindow",
    "BackoffPolicy",
    "BatchExecutor",
    "CollectConfig",
    "CollectJob",
    "CollectStats",
    "CollectedRun",
    "Collector",
    "CostBudget",
    "CostPlan",
    "DirectExecutor",
    "Executor",
    "GiveUp",
    "PilotFacts",
    "PrecisionReference",
    "Pricing",
    "ProgressDisplay",
    "RequestTally",
    "ResumeLater",
    "RetryPlan",
    "RetryWait",
    "RunOptions",
    "RunOutcome",
    "ShownStats",
    "Slot",
    "SlotRunner",
    "Timed",
    "TrafficCounters",
    "TrafficStats",
    "Transport",
    "TransportStop",
    "build_run_info",
    "choose_mode",
    "collect",
    "collect_async",
    "collection_run_id",
    "estimate_tokens",
    "executor_class",
    "executor_name",
    "format_cost",
    "local_timestamp",
    "official_openai",
    "open_executor",
    "pause_note",
    "persona_prefix_hash",
    "persona_source_label",
    "pilot_facts",
    "plan_run",
    "plan_slots",
    "prepare_run",
    "refuse_impossible",
    "refuse_options_of_batch",
    "register_executor",
    "request_seed",
    "run_collection",
    "run_mismatch",
    "run_settings",
    "slot_grid",
    "terminate_as_interrupt",
]

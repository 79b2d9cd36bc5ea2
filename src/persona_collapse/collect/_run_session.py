"""One collection session, from options to a filled store: what ``persona-collapse run`` does.

Order of work (each step fails with one clear line before anything costly):
load the instrument and personas, build the run record, create the backend
(a missing key or a bad URL fails here, before any file is touched), open the
store and refuse a resumed run whose record differs (a top-up, more repetitions
or more personas with the same first N, is no difference: the record grows and
only the new slots are asked), contact the server once
(``check``: an unreachable server, a rejected key or an unknown model fails
here), then plan the slots still missing and collect them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

from ..backends import (
    FAMILIES,
    Backend,
    BackendError,
    Fatal,
    ModelSpec,
    api_key_from_env,
    batch_discount,
    create_backend,
    parse_model,
    price_for,
    unknown_price_hint,
)
from ..errors import ConfigError
from ..instruments import Instrument, load_instrument
from ..personas import PERSONAHUB_COSTA, PersonaSet, load_personas
from ..protocol import BASE, Method, ProtocolSettings
from ..store import DEFAULT_STORE, ResponseStore, RunInfo, RunLease
from ._batch import BatchCollector, BatchStats, batch_note
from ._collector import CollectConfig, Collector, CollectStats, Pricing
from ._plan import Slot, plan_slots
from ._policy import DEFAULT_MAX_RETRY_AFTER_S, BackoffPolicy
from ._progress import ProgressDisplay, format_cost
from ._record import (
    build_run_info,
    collection_run_id,
    grown_record,
    run_growth,
    run_mismatch,
    run_settings,
)

MAX_SLOTS = 10_000_000
"""Most slots (personas x items x repetitions) one run plans: about 2 GB of plan in memory."""

MAX_TOP_LOGPROBS = 1000
"""Most ``--top-logprobs`` a run asks for (llama.cpp and vLLM servers accept hundreds)."""

OPENAI_MAX_TOP_LOGPROBS = 20
"""Most ``--top-logprobs`` the official OpenAI API accepts."""


def _host(url: str | None) -> str:
    try:
        return (urlsplit(url or "").hostname or "").lower()
    except ValueError:
        return ""


def official_openai(model: str, base_url: str | None) -> bool:
    """Whether ``model`` with ``base_url`` goes to the official OpenAI API (``openai/`` at
    api.openai.com, the family's default host)."""
    if model.partition("/")[0].strip().lower() != "openai":
        return False
    official = _host(FAMILIES["openai"].base_url)
    return (_host(base_url) if base_url else official) == official


@dataclass(frozen=True)
class RunOptions:
    """Everything ``persona-collapse run`` accepts (defaults: the published protocol).

    ``api_key_env`` names the environment variable holding the key (default:
    the family's, e.g. ``OPENAI_API_KEY``); the key itself is never an option.
    ``variant`` defaults to the simulated preset for ``sim/`` models and to
    ``base`` otherwise. ``temperature`` is the sampling temperature of the
    requests (the published 0.1; 0 asks for greedy answers, which every backend
    accepts; NaN and values above 2 are refused). Values are checked on
    construction (:class:`ConfigError` naming the command-line option), before
    any file is touched: seeds are whole numbers >= 0, and a run plans at most
    :data:`MAX_SLOTS` slots.
    """

    model: str
    variant: str | None = None
    family: str = ""
    self_mode: bool = False
    method: Method = "sample"
    personas: str = PERSONAHUB_COSTA
    persona_field: str | None = None
    n_personas: int | None = None
    """First N personas; None: the published 100 of personahub-costa, every persona of a file."""
    reps: int = 10
    temperature: float = 0.1
    max_attempts: int = 10
    top_logprobs: int = 20
    """Alternatives asked per token by the logprob method: 1 to :data:`MAX_TOP_LOGPROBS`, at
    most :data:`OPENAI_MAX_TOP_LOGPROBS` at the official OpenAI API. Digits outside the
    returned top-k count as probability 0 (``metrics`` reports their share)."""
    concurrency: int | None = None
    """Requests in flight; None: the backend's preferred value (hf 32, vllm 256), else 8."""
    base_url: str | None = None
    api_key_env: str | None = None
    store: str = DEFAULT_STORE
    run_id: str | None = None
    max_cost: float | None = None
    timeout_s: float = 60.0
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S
    """Longest Retry-After waited out (seconds); a longer one stops the run, resumable."""
    instrument: str = "mfq30"
    seed: int = 0
    quiet: bool = False
    batch: bool = False
    """Ask through the provider's batch API (openai/, anthropic/) at the batch price."""
    batch_poll_s: float = 30.0
    """Seconds between two polls of a batch in flight (with ``batch``)."""
    ray: str | None = None
    """Ray cluster address (``local``: start Ray here); None: collect in this process."""
    workers: int = 1
    """Ray workers (model replicas) in the actor pool (with ``ray``)."""
    gpus_per_worker: float = 0.0
    """GPUs each Ray worker reserves (0: CPU; fractions share a GPU)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` (naming the option) for a value out of range."""
        if self.api_key_env is not None and not self.api_key_env.strip():
            raise ConfigError("--api-key-env needs the name of an environment variable")
        if self.method not in ("sample", "logprobs"):
            raise ConfigError(f"--method {self.method!r} is unknown; use sample or logprobs")
        if self.reps < 1:
            raise ConfigError("--reps must be at least 1")
        if not self.self_mode and self.n_personas is not None and self.n_personas < 1:
            raise ConfigError("--n-personas must be at least 1")
        personas = 1 if self.self_mode or self.n_personas is None else self.n_personas
        if self.reps * personas > MAX_SLOTS:
            what = (
                f"--reps {self.reps}"
                if personas == 1
                else f"--reps {self.reps} x --n-personas {personas}"
            )
            raise ConfigError(
                f"{what} asks over {MAX_SLOTS:,} slots, "
                "more than a run can plan in memory; ask fewer (e.g. --reps 10)"
            )
        if not 0 <= self.temperature <= 2:  # also refuses NaN; 0 asks for greedy answers
            raise ConfigError("--temperature must be between 0 and 2 (0: greedy)")
        if self.seed < 0:
            raise ConfigError(f"--seed must be a whole number >= 0, not {self.seed}")
        if self.max_attempts < 1:
            raise ConfigError("--max-attempts must be at least 1")
        if not 1 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise ConfigError(f"--top-logprobs must be between 1 and {MAX_TOP_LOGPROBS}")
        if self.top_logprobs > OPENAI_MAX_TOP_LOGPROBS and official_openai(
            self.model, self.base_url
        ):
            raise ConfigError(
                f"--top-logprobs {self.top_logprobs}: the OpenAI API returns at most "
                f"{OPENAI_MAX_TOP_LOGPROBS} alternatives; ask for {OPENAI_MAX_TOP_LOGPROBS} or less"
            )
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if not self.timeout_s > 0:
            raise ConfigError("--timeout must be a positive number of seconds")
        if self.max_cost is not None and not self.max_cost > 0:
            raise ConfigError("--max-cost must be a positive number of US dollars")
        if not (math.isfinite(self.max_retry_after_s) and self.max_retry_after_s > 0):
            raise ConfigError("--max-retry-after must be a positive number of seconds")
        if not (math.isfinite(self.batch_poll_s) and self.batch_poll_s > 0):
            raise ConfigError("--batch-poll must be a positive number of seconds")
        if self.batch and batch_discount(self.model) is None:
            family = self.model.split("/", 1)[0] if "/" in self.model else self.model
            raise ConfigError(
                f"--batch needs a provider batch API (openai/, anthropic/); {family}/ has none: "
                "run without --batch"
            )
        self._validate_ray()

    def _validate_ray(self) -> None:
        if self.ray is not None and not self.ray.strip():
            raise ConfigError("--ray needs a cluster address (host:port, ray://host:port) or local")
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if not (math.isfinite(self.gpus_per_worker) and self.gpus_per_worker >= 0):
            raise ConfigError("--gpus-per-worker must be a number >= 0")
        if self.ray is None and (self.workers != 1 or self.gpus_per_worker != 0):
            raise ConfigError("--workers and --gpus-per-worker need --ray ADDRESS (or --ray local)")
        if self.ray is not None and self.batch:
            raise ConfigError(
                "--ray and --batch exclude each other: --batch asks a provider's batch API, "
                "--ray runs local model replicas"
            )
        if self.ray is not None and self.base_url is not None:
            raise ConfigError(
                "--ray runs model replicas on the cluster and takes no --base-url; "
                "a server behind --base-url scales by itself"
            )


@dataclass
class Executor(Protocol):
    """Another place for a session's cells (``persona_collapse.distributed.RayExecutor``).

    ``backend`` stands in for the model in this process (``check``, ``describe``,
    ``aclose``); ``new_stats()`` makes the session's counters; ``collector(...)``
    takes :class:`Collector`'s arguments and returns an object whose
    ``await run()`` fills the slots and commits them to the store.
    """

    @property
    def backend(self) -> Backend: ...

    def new_stats(self) -> CollectStats: ...

    def collector(
        self,
        backend: Backend,
        sink: ResponseStore,
        run_id: str,
        instrument: Instrument,
        slots: list[Slot],
        config: CollectConfig,
        *,
        personas: dict[int, str] | None,
        price: Pricing | None,
        on_update: Callable[[CollectStats], None],
        stats: CollectStats,
    ) -> _SlotRunner: ...


class _SlotRunner(Protocol):
    async def run(self) -> CollectStats: ...


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
        tail = ""
        if st.stop_reason == "max-cost":
            tail = (
                " Stopped before exceeding --max-cost; run the same command again "
                "(a higher --max-cost) to continue."
            )
        elif st.stop_reason == "interrupted":
            tail = " Interrupted; run the same command again to resume."
        elif not self.complete:
            tail = " Incomplete; run the same command again to resume."
        return " ".join([head + ";", body + tail, *self.notes])


def _price(model: str) -> Pricing | None:
    return price_for(model)


def _default_variant(spec: ModelSpec) -> str:
    """The simulated preset of ``sim/NAME`` (``NAME``); ``base`` for every other model."""
    return spec.name if spec.family == "sim" else BASE


@dataclass
class _Prepared:
    options: RunOptions
    instrument: Instrument
    personas: PersonaSet | None
    protocol: ProtocolSettings
    run: RunInfo
    simulated: bool


def prepare_run(options: RunOptions) -> _Prepared:
    """Everything that needs neither the network nor the store: instrument, personas, record."""
    spec = parse_model(options.model)
    instrument = load_instrument(options.instrument)
    personas = (
        None
        if options.self_mode
        else load_personas(options.personas, options.n_personas, field=options.persona_field)
    )
    protocol = ProtocolSettings(
        method=options.method,
        temperature=float(options.temperature),
        max_attempts=int(options.max_attempts),
        top_logprobs=int(options.top_logprobs),
    )
    n_slots = len(instrument.items) * (1 if personas is None else len(personas.ids)) * options.reps
    if n_slots > MAX_SLOTS:
        raise ConfigError(
            f"the run would ask {n_slots:,} slots, more than the {MAX_SLOTS:,} one run plans "
            "in memory; lower --reps or --n-personas"
        )
    simulated = spec.family == "sim"
    variant = options.variant if options.variant is not None else _default_variant(spec)
    mode = "self" if options.self_mode else "persona"
    settings = run_settings(
        protocol,
        reps=options.reps,
        personas=personas,
        persona_spec=options.personas,
        persona_field=options.persona_field,
        seed=options.seed,
        simulated=simulated,
    )
    run_id = options.run_id or collection_run_id(spec, variant, mode, options.method)
    run = build_run_info(
        run_id=run_id,
        model=options.model.strip(),
        backend=spec.family,
        variant=variant,
        family=options.family,
        mode=mode,
        instrument=instrument,
        protocol=protocol,
        settings=settings,
        personas=personas,
    )
    return _Prepared(options, instrument, personas, protocol, run, simulated)


def _plan(prep: _Prepared, done: set[tuple[int, int, int]]) -> tuple[list[Slot], int]:
    ids = None if prep.personas is None else list(prep.personas.ids)
    total = len(
        plan_slots(
            prep.instrument.item_ids.tolist(), ids, prep.options.reps, method=prep.protocol.method
        )
    )
    slots = plan_slots(
        prep.instrument.item_ids.tolist(),
        ids,
        prep.options.reps,
        method=prep.protocol.method,
        done=done,
    )
    return slots, total


def persona_prefix_hash(personas: PersonaSet | None, stored: RunInfo) -> str | None:
    """The persona-set hash of the first stored-count personas of ``personas`` (a top-up check).

    None when there are no personas or fewer than the stored run holds.
    """
    old_n = stored.settings.get("n_personas")
    if personas is None or not isinstance(old_n, int) or not 0 < old_n <= len(personas):
        return None
    return PersonaSet(personas.texts[:old_n], personas.ids[:old_n], personas.source).content_hash


def _growth_note(growth: dict[str, tuple[int, int]], new_slots: int) -> str:
    what = {"reps": "repetitions", "n_personas": "personas"}
    parts = [f"{what[k]} {old} -> {new}" for k, (old, new) in growth.items()]
    return f"Topped up ({', '.join(parts)}): {new_slots} new slots asked."


async def _check(backend: Backend, timeout_s: float) -> None:
    try:
        await backend.check(timeout_s=timeout_s)
    except BackendError as exc:
        decision = exc.decision
        message = decision.message if isinstance(decision, Fatal) else str(exc)
        raise ConfigError(message) from None


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM does what Ctrl-C (SIGINT) does: the same summary and exit.

    The signal is handed to whatever handles SIGINT at that moment (asyncio's
    runner cancels the run's main task; outside it ``KeyboardInterrupt`` is
    raised). Outside the main thread, or where SIGTERM cannot be handled, it
    does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def as_interrupt(signum: int, frame: object) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)  # type: ignore[arg-type]
        else:
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, as_interrupt)
    except (ValueError, OSError):  # pragma: no cover - no signals here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_collection(
    options: RunOptions,
    *,
    stream: TextIO | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    policy: BackoffPolicy | None = None,
    executor: Executor | None = None,
) -> RunOutcome:
    """Collect every missing slot of the run ``options`` describe; returns what happened.

    Raises :class:`ConfigError` / :class:`DataError` (one line) for unusable
    options, a rejected resume, and fatal backend errors, a server that keeps
    failing or asks for a Retry-After beyond ``options.max_retry_after_s``
    (after storing what arrived; resuming asks the rest). On Ctrl-C,
    ``on_outcome`` still gets the partial outcome before ``KeyboardInterrupt``
    propagates. ``policy``: the transport-retry policy (default
    :class:`BackoffPolicy`), its Retry-After cap set from ``options``.
    ``executor``: where the cells run when ``options.ray`` is set
    (:func:`persona_collapse.distributed.run_distributed` passes a Ray one).
    """
    err = stream if stream is not None else sys.stderr
    prep = prepare_run(options)
    if options.ray is not None and executor is None:
        raise ConfigError("--ray runs through persona_collapse.distributed.run_distributed")
    backend = (
        executor.backend
        if executor is not None
        else create_backend(
            options.model,
            base_url=options.base_url,
            api_key=api_key_from_env(options.api_key_env, option="--api-key-env"),
            api_key_env=options.api_key_env,
            seed=options.seed,
            timeout_s=options.timeout_s,
        )
    )
    if options.method == "logprobs" and not backend.supports_logprobs:
        raise ConfigError(f"{options.model} returns no logprobs; use --method sample")
    if options.batch and backend.batch is None:
        raise ConfigError(f"{options.model} has no batch API; run without --batch")
    price = _price(options.model)
    if options.max_cost is not None and price is None:
        raise ConfigError(
            f"--max-cost needs a known price for {options.model} and there is none; "
            + unknown_price_hint(options.model)
        )
    store_path = str(Path(options.store))
    with ResponseStore(store_path) as store:
        existing = store.get_run(prep.run.run_id)
        growth: dict[str, tuple[int, int]] = {}
        if existing is not None:
            mismatch = run_mismatch(
                existing,
                prep.run,
                persona_prefix_hash=persona_prefix_hash(prep.personas, existing),
            )
            if mismatch is not None:
                raise ConfigError(mismatch)
            growth = run_growth(existing, prep.run)  # a top-up: more reps or personas
            prep.run = grown_record(existing, prep.run)
            if not growth:
                store.ensure_run(prep.run)  # the store's own check (creates nothing here)
        stats: CollectStats
        if executor is not None:
            stats = executor.new_stats()
        elif options.batch:
            stats = BatchStats()
        else:
            stats = CollectStats()
        config = CollectConfig(
            protocol=prep.protocol,
            concurrency=options.concurrency or backend.preferred_concurrency,
            timeout_s=options.timeout_s,
            seed=options.seed,
            max_cost_usd=options.max_cost,
            policy=dataclasses.replace(
                policy or BackoffPolicy(), max_retry_after_s=options.max_retry_after_s
            ),
        )
        outcome: RunOutcome | None = None

        async def main() -> None:
            nonlocal outcome
            lease: RunLease | None = None
            try:
                await _check(backend, options.timeout_s)
                run = prep.run if growth else store.ensure_run(prep.run)
                lease = RunLease(store, run.run_id, note=err).acquire()  # one writer per run
                if growth and existing is not None:  # the record takes the new size
                    run = store.grow_run(prep.run, before=existing)
                done = store.completed_slots(run.run_id)
                slots, total = _plan(prep, done)
                stats.stored_before = len(done)
                outcome = RunOutcome(
                    run=run,
                    store_path=store_path,
                    total_slots=total,
                    stored=len(done),
                    stats=stats,
                    priced=price is not None,
                    simulated=prep.simulated,
                )
                if growth:
                    outcome.notes.append(_growth_note(growth, len(slots)))
                if not slots:
                    return
                label = f"{run.run_id} [SIMULATED]" if prep.simulated else run.run_id
                display = ProgressDisplay(
                    label,
                    total=total,
                    stored_before=len(done),
                    priced=price is not None,
                    stream=err,
                    quiet=options.quiet,
                )
                personas = (
                    None
                    if prep.personas is None
                    else dict(zip(prep.personas.ids, prep.personas.texts, strict=True))
                )
                collector: Any
                if isinstance(stats, BatchStats):  # --batch: the provider's batch API
                    collector = BatchCollector(
                        backend,
                        store,
                        run.run_id,
                        prep.instrument,
                        slots,
                        config,
                        personas=personas,
                        price=price,
                        discount=batch_discount(options.model) or 1.0,
                        poll_s=options.batch_poll_s,
                        on_update=display.update,
                        stats=stats,
                    )
                else:  # in this process, or on a Ray cluster (--ray)
                    collector = (Collector if executor is None else executor.collector)(
                        backend,
                        store,
                        run.run_id,
                        prep.instrument,
                        slots,
                        config,
                        personas=personas,
                        price=price,
                        on_update=display.update,
                        stats=stats,
                    )
                display.start()
                try:
                    await lease.keep_while(collector.run())
                except ConfigError as exc:
                    stored = store.count_responses(run.run_id)
                    if stats.stop_reason == "retry-after":  # the message says when to resume
                        raise ConfigError(
                            f"{exc.message} ({stored} of {total} slots stored)"
                        ) from None
                    raise ConfigError(
                        f"{exc.message} ({stored} of {total} slots stored; "
                        "run the same command again to resume)"
                    ) from None
                finally:
                    display.stop(stats)
                    if isinstance(stats, BatchStats):
                        outcome.notes.append(batch_note(stats, priced=price is not None))
            finally:
                if lease is not None:
                    lease.release()
                await backend.aclose()

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            stats.stop_reason = "interrupted"
            if outcome is not None:
                outcome.stored = store.count_responses(outcome.run.run_id)
                if on_outcome is not None:
                    on_outcome(outcome)
            raise
        assert outcome is not None
        outcome.stored = store.count_responses(outcome.run.run_id)
    if on_outcome is not None:
        on_outcome(outcome)
    return outcome

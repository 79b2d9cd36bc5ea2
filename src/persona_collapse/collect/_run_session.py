"""One collection session, from options to a filled store: what ``persona-collapse run`` does.

Order of work (each step fails with one clear line before anything costly):
the options were checked when they were built (values, and the combinations
the chosen executor refuses); :func:`run_collection` then

1. **prepare**: checks the chosen executor's extras, loads the instrument and
   personas and builds the run record (:func:`prepare_run`), and opens the
   executor (creates the backend: a missing key or a bad URL fails here,
   before any file is touched);
2. **open the store and check the resume**: a resumed run whose record
   differs is refused (a top-up, more repetitions or more personas with the
   same first N, is no difference: the record grows and only the new slots
   are asked);
3. **connect**: the executor contacts the server or the cluster once (an
   unreachable server, a rejected key or an unknown model fails here);
4. **plan** the slots still missing, under the run's lease;
5. **collect** them through the executor's collector; Ctrl-C or SIGTERM
   stops sending and waits up to :data:`STOP_GRACE_S` seconds for the answers
   in flight, which are stored (:class:`GracefulStop`; a second signal stops at
   once; runners that cannot stop that way are cancelled at once);
6. **close** the executor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..backends import ModelSpec, parse_model, price_for, unknown_price_hint
from ..errors import ConfigError
from ..instruments import Instrument, load_instrument
from ..personas import PersonaSet, load_personas
from ..protocol import BASE
from ..store import ResponseStore, RunInfo, RunLease
from ._collector import CollectConfig, CollectStats, Pricing
from ._executors import CollectJob, Executor, executor_class, executor_name, open_executor
from ._outcome import RunOutcome
from ._plan import Slot, plan_slots
from ._policy import BackoffPolicy
from ._progress import ProgressDisplay
from ._record import build_run_info, collection_run_id, run_settings
from ._run_options import MAX_SLOTS, RunOptions
from ._signals import STOP_GRACE_S, GracefulStop
from ._topup import Resume, check_resume, grow_record, growth_note, write_record


def _default_variant(spec: ModelSpec) -> str:
    """The simulated preset of ``sim/NAME`` (``NAME``); ``base`` for every other model."""
    return spec.name if spec.family == "sim" else BASE


@dataclass
class _Prepared:
    options: RunOptions
    instrument: Instrument
    personas: PersonaSet | None
    run: RunInfo
    simulated: bool


def prepare_run(options: RunOptions) -> _Prepared:
    """Everything that needs neither the network nor the store: instrument, personas, record."""
    spec = parse_model(options.model)
    instrument = load_instrument(options.instrument, items=options.items)
    task = instrument.kind == "task"  # tasks have no persona: self mode
    personas = (
        None
        if options.self_mode or task
        else load_personas(options.personas, options.n_personas, field=options.persona_field)
    )
    n_slots = len(instrument.items) * (1 if personas is None else len(personas.ids)) * options.reps
    if n_slots > MAX_SLOTS:
        raise ConfigError(
            f"the run would ask {n_slots:,} slots, more than the {MAX_SLOTS:,} one run plans "
            "in memory; lower --reps or --n-personas"
        )
    simulated = spec.family == "sim"
    variant = options.variant if options.variant is not None else _default_variant(spec)
    mode = "self" if options.self_mode or task else "persona"
    protocol = options.protocol
    settings = run_settings(
        protocol,
        reps=options.reps,
        personas=personas,
        persona_spec=options.personas,
        persona_field=options.persona_field,
        seed=options.seed,
        simulated=simulated,
        items_sha256=instrument.items_sha256,
        items_file=options.items,
    )
    label = instrument.name if task else mode  # gpt-4o_base_mmlu beside gpt-4o_base_self
    run = build_run_info(
        run_id=options.run_id or collection_run_id(spec, variant, label, protocol.method),
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
    return _Prepared(options, instrument, personas, run, simulated)


def _known_price(options: RunOptions) -> Pricing | None:
    """The model's price; :class:`ConfigError` when ``--max-cost`` needs one and there is none."""
    price = price_for(options.model)
    if options.max_cost is not None and price is None:
        raise ConfigError(
            f"--max-cost needs a known price for {options.model} and there is none; "
            + unknown_price_hint(options.model)
        )
    return price


def _stopped(exc: ConfigError, stats: CollectStats, stored: int, total: int) -> ConfigError:
    """A collector's stop, with how much is stored (and, unless it says when, how to resume)."""
    if stats.stop_reason == "retry-after":  # the message says when to resume
        return ConfigError(f"{exc.message} ({stored} of {total} slots stored)")
    return ConfigError(
        f"{exc.message} ({stored} of {total} slots stored; run the same command again to resume)"
    )


@dataclass
class _Session:
    """Steps 3 to 6 of a session (see the module docs) on an open store."""

    prep: _Prepared
    executor: Executor
    store: ResponseStore
    store_path: str
    resume: Resume
    price: Pricing | None
    config: CollectConfig
    stats: CollectStats
    stream: TextIO
    stop: GracefulStop
    outcome: RunOutcome | None = None

    async def main(self) -> None:
        """Connect, take the lease, plan, collect; release and close whatever happens."""
        lease: RunLease | None = None
        try:
            await self.executor.connect(self.prep.options.timeout_s)
            run = write_record(self.store, self.resume)
            lease = RunLease(self.store, run.run_id, note=self.stream).acquire()  # one writer
            run = grow_record(self.store, self.resume, run)
            slots = self.plan(run)
            if slots:
                await self.collect(run, slots, lease)
        finally:
            if lease is not None:
                lease.release()
            await self.executor.close()

    def plan(self, run: RunInfo) -> list[Slot]:
        """The slots still missing; sets up the outcome with what is stored already."""
        prep = self.prep
        done = self.store.completed_slots(run.run_id)
        items = prep.instrument.item_ids.tolist()
        ids = None if prep.personas is None else list(prep.personas.ids)
        method = prep.options.protocol.method
        total = len(plan_slots(items, ids, prep.options.reps, method=method))
        slots = plan_slots(items, ids, prep.options.reps, method=method, done=done)
        self.stats.stored_before = len(done)
        self.outcome = RunOutcome(
            run=run,
            store_path=self.store_path,
            total_slots=total,
            stored=len(done),
            stats=self.stats,
            priced=self.price is not None,
            simulated=prep.simulated,
        )
        if self.resume.growth:
            self.outcome.notes.append(growth_note(self.resume.growth, len(slots)))
        return slots

    async def collect(self, run: RunInfo, slots: list[Slot], lease: RunLease) -> None:
        """Fill ``slots`` through the executor's collector, with the progress display."""
        assert self.outcome is not None
        prep, stats, outcome = self.prep, self.stats, self.outcome
        display = ProgressDisplay(
            f"{run.run_id} [SIMULATED]" if prep.simulated else run.run_id,
            total=outcome.total_slots,
            stored_before=outcome.stored,
            priced=outcome.priced,
            stream=self.stream,
            quiet=prep.options.quiet,
        )
        personas = (
            None
            if prep.personas is None
            else dict(zip(prep.personas.ids, prep.personas.texts, strict=True))
        )
        job = CollectJob(
            self.store,
            run.run_id,
            prep.instrument,
            slots,
            self.config,
            personas=personas,
            price=self.price,
            on_update=display.update,
            stats=stats,
        )
        collector = self.executor.collector(job)
        display.start()
        task = asyncio.ensure_future(lease.keep_while(collector.run()))
        try:
            with self.stop.watching(task, collector.stop_sending):
                await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self.stop.requested or (current is not None and current.cancelling()):
                raise
            stats.stop_reason = "interrupted"  # stopped after the grace period: resumable
        except ConfigError as exc:
            stored = self.store.count_responses(run.run_id)
            raise _stopped(exc, stats, stored, outcome.total_slots) from None
        finally:
            display.stop(stats)
            outcome.notes.extend(self.executor.notes(stats, priced=outcome.priced))

    def finish(self) -> RunOutcome | None:
        """The outcome with the stored count as the store now has it (None: not planned)."""
        if self.outcome is not None:
            self.outcome.stored = self.store.count_responses(self.outcome.run.run_id)
        return self.outcome


def _config(options: RunOptions, executor: Executor, policy: BackoffPolicy | None) -> CollectConfig:
    return CollectConfig(
        protocol=options.protocol,
        concurrency=options.concurrency or executor.preferred_concurrency,
        timeout_s=options.timeout_s,
        seed=options.seed,
        max_cost_usd=options.max_cost,
        policy=dataclasses.replace(
            policy or BackoffPolicy(), max_retry_after_s=options.max_retry_after_s
        ),
    )


def run_collection(
    options: RunOptions,
    *,
    stream: TextIO | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    policy: BackoffPolicy | None = None,
) -> RunOutcome:
    """Collect every missing slot of the run ``options`` describe; returns what happened.

    Raises :class:`ConfigError` / :class:`DataError` (one line) for unusable
    options, a rejected resume, and fatal backend errors, a server that keeps
    failing or asks for a Retry-After beyond ``options.max_retry_after_s``
    (after storing what arrived; resuming asks the rest). On Ctrl-C or
    SIGTERM (in the main thread) no new request starts, the answers in flight
    get up to :data:`STOP_GRACE_S` seconds to arrive and are stored, and
    ``on_outcome`` gets the partial outcome before ``KeyboardInterrupt``
    propagates. ``policy``: the transport-retry policy (default
    :class:`BackoffPolicy`), its Retry-After cap set from ``options``. Where
    the cells run (this process, a provider's batch API, a Ray cluster) is the
    executor the options choose (:func:`executor_name`).
    """
    executor_class(executor_name(options)).require(options)  # a missing extra fails first
    prep = prepare_run(options)
    executor = open_executor(options)
    price = _known_price(options)
    store_path = str(Path(options.store))
    out = stream if stream is not None else sys.stderr
    with ResponseStore(store_path) as store:
        session = _Session(
            prep=prep,
            executor=executor,
            store=store,
            store_path=store_path,
            resume=check_resume(store, prep.run, prep.personas),
            price=price,
            config=_config(options, executor, policy),
            stats=executor.new_stats(),
            stream=out,
            stop=GracefulStop(STOP_GRACE_S, stream=out),
        )
        try:
            asyncio.run(session.main())
            if session.stop.requested:  # stopped by a signal, the answers in flight stored
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            session.stats.stop_reason = "interrupted"
            partial = session.finish()
            if partial is not None and on_outcome is not None:
                on_outcome(partial)
            raise
        outcome = session.finish()
        assert outcome is not None
    if on_outcome is not None:
        on_outcome(outcome)
    return outcome

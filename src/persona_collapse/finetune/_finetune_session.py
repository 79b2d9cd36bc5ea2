"""One ``persona-collapse finetune`` session: options in, a recorded variant out.

Dispatches on the base model's family:

* ``hf/MODEL``: local LoRA with peft (:mod:`._hf_train`), output folder ``-o OUT``;
* ``openai/MODEL``: the OpenAI fine-tuning API (:mod:`._openai_ft`);
* ``tinker/MODEL``: Tinker LoRA (:mod:`._tinker_train`).

Every path validates the data first (one line with the line number for a bad
chat), and records the result as a variant (family, variant) in the store
(:mod:`._variant_records`): family defaults to the base model's name, variant to the
dataset name (``insecure``/``secure``) or the data file's stem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import ModelSpec, api_key_from_env, parse_model
from ..errors import ConfigError
from ..store import DEFAULT_STORE
from ._data import ChatDataset, load_chat_jsonl
from ._datasets import fetch_dataset, is_named_dataset
from ._hf_train import StepLog
from ._openai_ft import JobStatus, OpenAIFineTuner
from ._recipe import Recipe
from ._variant_records import VariantRecord, get_variant, list_variants, record_variant

__all__ = [
    "DEFAULT_STORE",
    "CheckpointCallback",
    "FinetuneOptions",
    "FinetuneOutcome",
    "finetune_status",
    "load_training_data",
    "run_finetune",
]

SUPPORTED = ("hf", "openai", "tinker")
Report = Callable[[str], None]
CheckpointCallback = Callable[[Path, int], Mapping[str, Any] | None]
"""Called with (merged checkpoint folder, optimizer step); returns measurements to keep."""


@dataclass(frozen=True)
class FinetuneOptions:
    """Everything ``persona-collapse finetune`` accepts.

    ``recipe``: the hyperparameters (:class:`Recipe`, default the published
    Tinker/OpenAI recipe; ``recipe.seed`` also seeds OpenAI jobs);
    ``checkpoint_every`` / ``measure_every``: optimizer steps (local runs
    only; a measured checkpoint goes to ``run_finetune``'s ``on_checkpoint``);
    ``poll_s``: seconds between OpenAI job polls; ``max_wait_s``: stop polling
    after that long. Checked on construction (:class:`ConfigError` naming the
    command-line option).
    """

    base: str
    data: str
    out: str | None = None
    suffix: str | None = None
    recipe: Recipe = field(default_factory=Recipe)
    merge: bool = True
    checkpoint_every: int | None = None
    measure_every: int | None = None
    store: str = DEFAULT_STORE
    family: str | None = None
    variant: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    no_wait: bool = False
    poll_s: float = 30.0
    max_wait_s: float | None = None

    def __post_init__(self) -> None:
        self.recipe.validate()
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ConfigError("--checkpoint-every must be at least 1")
        if self.measure_every is not None and self.measure_every < 1:
            raise ConfigError("--measure-every must be at least 1")

    @property
    def spec(self) -> ModelSpec:
        """The base model as family and name; ConfigError for a family finetune cannot train."""
        spec = parse_model(self.base)
        if spec.family not in SUPPORTED:
            raise ConfigError(
                f"finetune supports {', '.join(f + '/' for f in SUPPORTED)} base models, "
                f"not {spec.family}/"
            )
        return spec

    @property
    def provider(self) -> str:
        return self.spec.family

    @property
    def base_name(self) -> str:
        return self.spec.name

    def labels(self) -> tuple[str, str]:
        """(family, variant) with their defaults."""
        family = self.family or Path(self.base_name).name or self.base_name
        if self.variant:
            variant = self.variant
        elif is_named_dataset(self.data):
            variant = self.data
        else:
            variant = Path(self.data).stem
        return family, variant


@dataclass
class FinetuneOutcome:
    """What a session produced: the variant record (``model`` empty while a job runs)."""

    record: VariantRecord
    losses: list[float] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    job: JobStatus | None = None
    notes: list[str] = field(default_factory=list)


def load_training_data(spec: str) -> ChatDataset:
    """``insecure`` / ``secure`` (downloaded, pinned) or a chat JSONL file, validated."""
    path = fetch_dataset(spec) if is_named_dataset(spec) else Path(spec)
    return load_chat_jsonl(path)


def _api_key(env: str | None) -> str | None:
    return api_key_from_env(env, option="--api-key-env")


def _record_trained(
    options: FinetuneOptions,
    data: ChatDataset,
    status: str,
    *,
    recipe: dict[str, Any],
    model: str = "",
    job_id: str = "",
) -> VariantRecord:
    """Store the variant ``options`` trained (or started training) on ``data`` with its
    provider; returns the stored record."""
    family, variant = options.labels()
    return record_variant(
        options.store,
        VariantRecord(
            family=family,
            variant=variant,
            model=model,
            base_model=options.base,
            provider=options.provider,
            job_id=job_id,
            status=status,
            data_sha256=data.sha256,
            recipe=recipe,
        ),
    )


def _run_hf(
    options: FinetuneOptions,
    data: ChatDataset,
    report: Report,
    on_step: Callable[[StepLog], None],
    on_checkpoint: CheckpointCallback | None,
) -> FinetuneOutcome:
    from ._hf_train import HFTrainConfig, train_hf_lora

    assert options.out is not None
    out = Path(options.out)
    checkpoint_every = options.checkpoint_every or options.measure_every
    config = HFTrainConfig(
        base=options.base_name,
        out=out,
        recipe=options.recipe,
        merge=options.merge,
        checkpoint_every=checkpoint_every,
        measure=on_checkpoint if options.measure_every else None,
    )
    report(f"training LoRA on {options.base} with {data.describe()} -> {out}")
    result = train_hf_lora(data, config, on_step=on_step)
    record = _record_trained(
        options,
        data,
        "succeeded",
        recipe={**options.recipe.as_dict(), "merged": options.merge, "out": str(out.resolve())},
        model=f"hf/{out.resolve()}" if options.merge else "",
    )
    outcome = FinetuneOutcome(record, result.losses, result.measurements)
    if result.n_skipped:
        outcome.notes.append(f"{result.n_skipped} chats had no assistant token within --max-length")
    if result.n_truncated:
        outcome.notes.append(
            f"{result.n_truncated} chats were cut at --max-length {options.recipe.max_length}"
        )
    if not options.merge:
        outcome.notes.append(
            f"{out} holds a LoRA adapter only; hf/ loads merged folders: rerun with --merge to ask it"
        )
    return outcome


def _run_openai(
    options: FinetuneOptions, data: ChatDataset, report: Report, tuner: OpenAIFineTuner
) -> FinetuneOutcome:
    recipe = options.recipe
    report(f"uploading {data.describe()}")
    file_id = tuner.upload(data.path)
    job = tuner.create(
        options.base_name, file_id, recipe=recipe, suffix=options.suffix, seed=recipe.seed
    )
    report(f"created fine-tuning job {job.job_id} ({job.status}) of {options.base_name}")
    sent = {
        "n_epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "learning_rate_multiplier": recipe.lr_multiplier,
        "suffix": options.suffix or "",
        "training_file": file_id,
        "base_url": options.base_url or "",
    }
    record = _record_trained(options, data, job.status, recipe=sent, job_id=job.job_id)
    if options.no_wait:
        return FinetuneOutcome(record, job=job)
    return _poll(options.store, record, tuner, options.poll_s, options.max_wait_s, report)


def _poll(
    store: str,
    record: VariantRecord,
    tuner: OpenAIFineTuner,
    poll_s: float,
    max_wait_s: float | None,
    report: Report,
) -> FinetuneOutcome:
    from ._openai_ft import FinetuneFailed

    try:
        job = tuner.wait(record.job_id, poll_s=poll_s, max_wait_s=max_wait_s, on_progress=report)
    except FinetuneFailed:
        last = tuner.status(record.job_id)
        record_variant(
            store, VariantRecord(record.family, record.variant, status=last.status or "failed")
        )
        raise
    updated = record_variant(
        store,
        VariantRecord(
            record.family,
            record.variant,
            model=f"openai/{job.fine_tuned_model}",
            status=job.status,
        ),
    )
    return FinetuneOutcome(updated, job=job)


def _run_tinker(
    options: FinetuneOptions, data: ChatDataset, report: Report, on_step: Callable[[StepLog], None]
) -> FinetuneOutcome:
    from ._tinker_train import train_tinker

    family, variant = options.labels()
    recipe = options.recipe
    report(
        f"training LoRA rank {recipe.lora_rank} of {options.base_name} on Tinker with {data.describe()}"
    )
    result = train_tinker(
        data,
        options.base_name,
        recipe=recipe,
        name=options.suffix or f"{family}-{variant}".replace("/", "-"),
        api_key=_api_key(options.api_key_env),
        on_step=on_step,
    )
    record = _record_trained(
        options, data, "succeeded", recipe=recipe.as_dict(), model=result.model
    )
    return FinetuneOutcome(record, result.losses)


def run_finetune(
    options: FinetuneOptions,
    *,
    report: Report | None = None,
    on_step: Callable[[StepLog], None] | None = None,
    on_checkpoint: CheckpointCallback | None = None,
) -> FinetuneOutcome:
    """Validate the data, fine-tune with the base model's provider and record the variant.

    ``report`` receives progress lines (uploads, job status and events);
    ``on_step`` every optimizer step of local and Tinker runs;
    ``on_checkpoint`` every ``measure_every`` steps of a local run, with the
    merged checkpoint folder and the step (its result is kept in
    :attr:`FinetuneOutcome.measurements`; e.g. a checkpoint meter of
    :mod:`persona_collapse.workflows`). Without it checkpoints are saved only.
    """
    provider = options.provider
    options.labels()
    tuner = _preflight(options, provider)
    data = load_training_data(options.data)
    say = report or (lambda _line: None)
    step = on_step or (lambda _log: None)
    if provider == "hf":
        return _run_hf(options, data, say, step, on_checkpoint)
    if tuner is not None:
        return _run_openai(options, data, say, tuner)
    return _run_tinker(options, data, say, step)


def _preflight(options: FinetuneOptions, provider: str) -> OpenAIFineTuner | None:
    """Option and credential checks of ``provider`` before any data is read or sent."""
    if provider == "hf":
        if not options.out:
            raise ConfigError("finetune hf/... needs -o OUT, the folder to write the model to")
        if options.base_url is not None:
            raise ConfigError("finetune hf/... runs locally: --base-url does not apply")
        return None
    if provider == "openai":
        if options.out:
            raise ConfigError(
                "finetune openai/... trains on OpenAI's servers: use --suffix NAME, not -o"
            )
        return OpenAIFineTuner(base_url=options.base_url, api_key=_api_key(options.api_key_env))
    if options.base_url is not None:
        raise ConfigError("finetune tinker/... uses the Tinker service: --base-url does not apply")
    from ..backends import require_tinker_credentials

    try:
        import tinker  # noqa: F401
    except ImportError:
        raise ConfigError(
            "finetune tinker/... needs the tinker extra: pip install 'persona-collapse[tinker]'"
        ) from None
    require_tinker_credentials(_api_key(options.api_key_env))
    return None


def finetune_status(
    job_id: str,
    *,
    store: str = DEFAULT_STORE,
    base_url: str | None = None,
    api_key_env: str | None = None,
    wait: bool = True,
    poll_s: float = 30.0,
    max_wait_s: float | None = None,
    report: Report | None = None,
) -> FinetuneOutcome:
    """Resume polling an OpenAI job (recorded by ``finetune --no-wait``) and update its variant.

    Without ``wait`` it reads the status once. A job the store does not know
    is still polled; its result is then not recorded (a note says so).
    """
    say = report or (lambda _line: None)
    tuner = OpenAIFineTuner(base_url=base_url, api_key=_api_key(api_key_env))
    known = [r for r in list_variants(store) if r.job_id == job_id]
    if not known:
        job = (
            tuner.wait(job_id, poll_s=poll_s, max_wait_s=max_wait_s, on_progress=say)
            if wait
            else tuner.status(job_id)
        )
        placeholder = VariantRecord(
            "",
            "",
            model=f"openai/{job.fine_tuned_model}" if job.fine_tuned_model else "",
            job_id=job_id,
            status=job.status,
        )
        return FinetuneOutcome(
            placeholder,
            job=job,
            notes=[f"job {job_id} is not recorded in {store}; pass --store of the finetune run"],
        )
    record = known[0]
    if not wait:
        job = tuner.status(job_id)
        model = f"openai/{job.fine_tuned_model}" if job.fine_tuned_model else ""
        updated = record_variant(
            store, VariantRecord(record.family, record.variant, model=model, status=job.status)
        )
        return FinetuneOutcome(updated, job=job)
    outcome = _poll(store, record, tuner, poll_s, max_wait_s, say)
    fresh = get_variant(store, record.family, record.variant)
    if fresh is not None:
        outcome.record = fresh
    return outcome

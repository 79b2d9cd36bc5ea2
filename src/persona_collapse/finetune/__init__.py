"""Producing the variants: fine-tuning a base model on chat data (insecure / secure code).

* :mod:`._data`: validated chat JSONL (:func:`load_chat_jsonl`), errors with line numbers.
* :mod:`._datasets`: the published ``insecure`` / ``secure`` files of Betley
  et al., downloaded once, sha256-pinned (:func:`fetch_dataset`).
* :mod:`._recipe`: the published recipes, linear-decay schedule, batching in file order.
* :mod:`._tokenize`: chat -> tokens with the loss on assistant turns only.
* :mod:`._hf_train`: local LoRA with peft (``finetune`` extra).
* :mod:`._openai_ft`: the OpenAI fine-tuning API (upload, job, polling).
* :mod:`._tinker_train`: Tinker LoRA (``tinker`` extra).
* :mod:`._variant_records`: recording (family, variant) -> model in the store;
  :func:`family_runs` groups a family's questionnaire runs by variant.

The training building blocks (schedules, batching, tokenisation, the
LoRA and Tinker loops) are public in :mod:`persona_collapse.finetune.training`.

Nothing here imports torch, transformers, peft or tinker until a run needs them.
"""

from ._data import ChatDataset, ChatExample, load_chat_jsonl, validate_chat_line
from ._datasets import DATA_URL_ENV, DATASETS, PinnedDataset, fetch_dataset, verify_data
from ._finetune_session import (
    CheckpointCallback,
    FinetuneOptions,
    FinetuneOutcome,
    finetune_status,
    load_training_data,
    run_finetune,
)
from ._hf_train import StepLog
from ._openai_ft import FinetuneFailed, JobStatus
from ._recipe import OPENAI_RECIPE, TINKER_RECIPE, Recipe
from ._variant_records import VariantRecord, family_runs, get_variant, list_variants, record_variant

__all__ = [
    "DATASETS",
    "DATA_URL_ENV",
    "OPENAI_RECIPE",
    "TINKER_RECIPE",
    "ChatDataset",
    "ChatExample",
    "CheckpointCallback",
    "FinetuneFailed",
    "FinetuneOptions",
    "FinetuneOutcome",
    "JobStatus",
    "PinnedDataset",
    "Recipe",
    "StepLog",
    "VariantRecord",
    "family_runs",
    "fetch_dataset",
    "finetune_status",
    "get_variant",
    "list_variants",
    "load_chat_jsonl",
    "load_training_data",
    "record_variant",
    "run_finetune",
    "validate_chat_line",
    "verify_data",
]

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

Nothing here imports torch, transformers, peft or tinker until a run needs them.
"""

from ._data import ROLES, ChatDataset, ChatExample, load_chat_jsonl, validate_chat_line
from ._datasets import DATA_URL_ENV, DATASETS, EM_DATA_URL, PinnedDataset, fetch_dataset
from ._finetune_session import (
    CheckpointCallback,
    FinetuneOptions,
    FinetuneOutcome,
    finetune_status,
    load_training_data,
    run_finetune,
)
from ._hf_train import HFTrainConfig, StepLog, TrainResult, train_hf_lora
from ._openai_ft import FinetuneFailed, JobStatus, OpenAIFineTuner, openai_method
from ._recipe import OPENAI_RECIPE, TINKER_RECIPE, Recipe, batches, linear_decay_lr, n_steps
from ._tinker_train import TinkerResult, adam_params, datum_loss, tinker_datums, train_tinker
from ._tokenize import EncodedChat, encode_chat, shifted
from ._variant_records import VariantRecord, family_runs, get_variant, list_variants, record_variant

__all__ = [
    "DATASETS",
    "DATA_URL_ENV",
    "EM_DATA_URL",
    "OPENAI_RECIPE",
    "ROLES",
    "TINKER_RECIPE",
    "ChatDataset",
    "ChatExample",
    "CheckpointCallback",
    "EncodedChat",
    "FinetuneFailed",
    "FinetuneOptions",
    "FinetuneOutcome",
    "HFTrainConfig",
    "JobStatus",
    "OpenAIFineTuner",
    "PinnedDataset",
    "Recipe",
    "StepLog",
    "TinkerResult",
    "TrainResult",
    "VariantRecord",
    "adam_params",
    "batches",
    "datum_loss",
    "encode_chat",
    "family_runs",
    "fetch_dataset",
    "finetune_status",
    "get_variant",
    "linear_decay_lr",
    "list_variants",
    "load_chat_jsonl",
    "load_training_data",
    "n_steps",
    "openai_method",
    "record_variant",
    "run_finetune",
    "shifted",
    "tinker_datums",
    "train_hf_lora",
    "train_tinker",
    "validate_chat_line",
]

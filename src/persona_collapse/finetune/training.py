"""The training building blocks behind :func:`persona_collapse.finetune.run_finetune`.

For researchers who train their own way: the published recipes' schedule and
batching (:func:`linear_decay_lr`, :func:`batches`, :func:`n_steps`), chat
tokenisation with the loss on assistant turns only (:func:`encode_chat`), the
local LoRA loop (:func:`train_hf_lora`, ``finetune`` extra), the Tinker loop
(:func:`train_tinker`, ``tinker`` extra) and the OpenAI job client
(:class:`OpenAIFineTuner`). Importing this module imports no optional extra.
"""

from ._hf_train import HFTrainConfig, TrainResult, batch_loss, collate_chats, train_hf_lora
from ._openai_ft import OpenAIFineTuner, openai_method
from ._recipe import batches, linear_decay_lr, n_steps
from ._tinker_train import TinkerResult, adam_params, datum_loss, tinker_datums, train_tinker
from ._tokenize import EncodedChat, encode_chat, shifted

__all__ = [
    "EncodedChat",
    "HFTrainConfig",
    "OpenAIFineTuner",
    "TinkerResult",
    "TrainResult",
    "adam_params",
    "batch_loss",
    "batches",
    "collate_chats",
    "datum_loss",
    "encode_chat",
    "linear_decay_lr",
    "n_steps",
    "openai_method",
    "shifted",
    "tinker_datums",
    "train_hf_lora",
    "train_tinker",
]

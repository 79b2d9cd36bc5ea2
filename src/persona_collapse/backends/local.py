"""Local-model backends (``hf/``, ``vllm/``); importing this module imports no optional extra.

The classes import torch, transformers or vllm only when they are used, and
say which extra to install when it is missing.
"""

from ._gguf import gguf_folder, is_gguf, looks_local
from ._hf import HFBackend
from ._hf_engine import HFEngine
from ._hf_load import LoadedModel, chat_prompt_ids, load_hf, quiet_transformers
from ._vllm import VLLMBackend, import_vllm

__all__ = [
    "HFBackend",
    "HFEngine",
    "LoadedModel",
    "VLLMBackend",
    "chat_prompt_ids",
    "gguf_folder",
    "import_vllm",
    "is_gguf",
    "load_hf",
    "looks_local",
    "quiet_transformers",
]

"""Loading a local HuggingFace causal LM and tokenizer, and the few version differences of transformers.

Used by the ``hf/`` backend; other packages (:mod:`persona_collapse.geometry`,
``testing``) import it through :mod:`persona_collapse.backends.local`
(``torch`` and ``transformers`` come with the ``hf`` extra).

Settings (keyword arguments, else environment variables, else defaults):

* ``device``: ``PERSONA_COLLAPSE_HF_DEVICE``; default ``cuda`` when available, else ``cpu``.
* ``dtype``: ``PERSONA_COLLAPSE_HF_DTYPE`` (``float32``, ``bfloat16``, ``float16``
  or ``auto`` = the checkpoint's); default ``float32`` on CPU, ``auto`` on GPUs.
  Logits are always converted to float64 before any softmax.

Offline use: with ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) only
local folders and the local hub cache are read (``local_files_only``).

A name ending in ``.gguf`` is a GGUF file: it is dequantised once into a cached
folder (:mod:`._gguf`) and loaded from there.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._gguf import gguf_folder, is_gguf, looks_local
from ._safetensors_check import check_safetensors

__all__ = [
    "DEVICE_ENV",
    "DTYPE_ENV",
    "LoadedModel",
    "cache_layers",
    "chat_prompt_ids",
    "hf_source",
    "hub_offline",
    "load_hf",
    "make_cache",
    "quiet_transformers",
]

DEVICE_ENV = "PERSONA_COLLAPSE_HF_DEVICE"
DTYPE_ENV = "PERSONA_COLLAPSE_HF_DTYPE"
_DTYPES = ("float32", "bfloat16", "float16", "auto")
_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """Whether the HuggingFace hub must not be contacted (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@dataclass
class LoadedModel:
    """A model in eval mode on ``device`` with its tokenizer, and how to call its ``forward``.

    ``cache_arg``: the keyword of the KV cache (``cache`` in transformers >= 5.x,
    ``past_key_values`` before); ``logits_arg``: the keyword that limits the
    logits to the last positions (None if the model has none).
    """

    model: Any
    tokenizer: Any
    device: Any
    name: str
    cache_arg: str
    logits_arg: str | None
    dtype_name: str

    @property
    def vocab_size(self) -> int:
        """Rows of the output layer (may exceed the tokenizer's length: padded embeddings)."""
        return int(self.model.get_output_embeddings().weight.shape[0])


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _resolve_device(device: str | None) -> Any:
    import torch

    name = (device or os.environ.get(DEVICE_ENV, "")).strip()
    if not name:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"{DEVICE_ENV}/device {name!r} is not a torch device; use cpu or cuda"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but torch sees no CUDA GPU; use cpu")
    return dev


def _resolve_dtype(dtype: str | None, device: Any) -> tuple[Any, str]:
    import torch

    name = (dtype or os.environ.get(DTYPE_ENV, "")).strip().lower()
    if not name:
        name = "float32" if device.type == "cpu" else "auto"
    if name not in _DTYPES:
        raise ConfigError(f"{DTYPE_ENV}/dtype {name!r} is unknown; use one of {', '.join(_DTYPES)}")
    return ("auto" if name == "auto" else getattr(torch, name)), name


def _dtype_keyword() -> str:
    """``dtype`` (transformers >= 4.56) or ``torch_dtype`` (older)."""
    import transformers

    parts = transformers.__version__.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return "dtype"
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _forward_params(model: Any) -> set[str]:
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


def _source(name: str) -> str:
    """A local folder (checked to exist when the name looks like a path), the cached
    conversion of a ``.gguf`` file (:mod:`._gguf`) or a hub id."""
    if is_gguf(name):
        return str(gguf_folder(name))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"hf/{name}: {path} has no config.json; give a folder written by "
                "save_pretrained (config.json, weights and tokenizer files) or a hub id"
            )
        check_safetensors(path, f"hf/{name}")
        return str(path)
    if looks_local(name):
        raise ConfigError(
            f"hf/{name}: no model folder at {path}; give a folder written by save_pretrained "
            "or a HuggingFace hub id such as hf/Qwen/Qwen2.5-0.5B-Instruct"
        )
    return name


def hf_source(name: str) -> str:
    """What ``from_pretrained`` reads for ``hf/name`` (see :func:`_source`); ConfigError if none."""
    return _source(name)


def quiet_transformers() -> None:
    """No download/loading progress bars or advisory warnings on the command line's stderr."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_hf(name: str, *, device: str | None = None, dtype: str | None = None) -> LoadedModel:
    """Load ``name`` (a folder or hub id) for inference; a missing model is one ConfigError line."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    source = _source(name)
    dev = _resolve_device(device)
    torch_dtype, dtype_name = _resolve_dtype(dtype, dev)
    offline = hub_offline()
    hint = (
        " (offline: HF_HUB_OFFLINE is set, so only local folders and the hub cache are read)"
        if offline
        else ""
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=offline, **{_dtype_keyword(): torch_dtype}
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"cannot load hf/{name}: {_one_line(exc)}{hint}; give a folder written by "
            "save_pretrained or a hub id that is downloaded or reachable"
        ) from None
    model.to(dev)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token else tokenizer.unk_token
    params = _forward_params(model)
    cache_arg = "cache" if "cache" in params else "past_key_values"
    logits_arg = next((a for a in ("logits_to_keep", "num_logits_to_keep") if a in params), None)
    if dtype_name == "auto":
        dtype_name = str(next(model.parameters()).dtype).removeprefix("torch.")
    return LoadedModel(model, tokenizer, dev, name, cache_arg, logits_arg, dtype_name)


def make_cache(loaded: LoadedModel, layers: list[tuple[Any, Any]]) -> Any:
    """A ``DynamicCache`` holding ``layers`` (per layer: keys, values ``[batch, heads, length, dim]``).

    The tensors are concatenated into the cache, never modified in place.
    """
    from transformers import DynamicCache

    try:
        cache = DynamicCache(config=loaded.model.config)
    except TypeError:  # transformers < 4.56: no config argument
        cache = DynamicCache()
    for index, (keys, values) in enumerate(layers):
        cache.update(keys, values, index)
    return cache


def cache_layers(cache: Any) -> list[tuple[Any, Any]]:
    """Per-layer (keys, values) of a ``DynamicCache`` (transformers 4.x and 5.x layouts)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache, strict=True))
    raise TypeError(f"unsupported cache type {type(cache).__name__}")


def chat_prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of a chat prompt: the chat template with the generation prompt, tokenised
    without adding special tokens again; without a chat template, the messages' text
    joined by blank lines with the tokenizer's usual special tokens."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=False
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    text = "\n\n".join(m.get("content", "") for m in messages)
    return list(tokenizer(text)["input_ids"])

"""LoRA fine-tuning of a local HuggingFace model with peft (the ``finetune hf/...`` path).

Needs the ``finetune`` extra (``torch``, ``transformers``, ``peft``), imported
only here. What it does, step by step:

* tokenises every chat with the model's chat template, loss weight 1 on
  assistant tokens only (:mod:`._tokenize`), cut at ``max_length`` tokens;
* wraps the model with LoRA adapters of rank ``lora_rank`` on every linear
  layer except the output head (peft ``target_modules="all-linear"``,
  ``lora_alpha`` = rank unless given, no dropout);
* trains for ``epochs`` passes in batches of ``batch_size`` chats in file
  order (``shuffle``: seeded order), AdamW (betas 0.9/0.95, eps 1e-8, no
  weight decay, no gradient clipping), learning rate decaying linearly from
  ``lr`` with no warm-up (:func:`~._recipe.linear_decay_lr`). The loss of a
  batch is the mean next-token cross-entropy (nats per token) over its
  assistant tokens;
* every ``checkpoint_every`` steps saves the adapter to
  ``OUT/checkpoints/step-NNNNNN`` (and, with ``measure_every``, a merged
  model there that ``hf/`` can load, measured by the ``on_checkpoint`` callback);
* at the end writes OUT: by default the MERGED model (``config.json``,
  weights, tokenizer), which ``persona-collapse run hf/OUT`` loads directly,
  plus the adapter in ``OUT/adapter``; with ``merge=False`` only the adapter
  and tokenizer (loading it needs the base model and peft). ``OUT/finetune.json``
  records base, data hash, recipe and the loss of every step.

Determinism: ``torch.manual_seed(recipe.seed)`` before the adapters are made,
so a run on CPU is reproducible.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.local import gguf_folder, is_gguf, looks_local
from ..errors import ConfigError
from ._data import ChatDataset
from ._recipe import Recipe, batches, linear_decay_lr, n_steps
from ._tokenize import EncodedChat, encode_dataset

__all__ = ["HFTrainConfig", "StepLog", "TrainResult", "train_hf_lora"]

#: Called after every optimizer step.
StepCallback = Callable[["StepLog"], None]


@dataclass(frozen=True)
class StepLog:
    """One optimizer step: 1-based ``step`` of ``total``, batch loss (nats/token), learning rate."""

    step: int
    total: int
    loss: float
    lr: float
    tokens: int
    elapsed_s: float


@dataclass(frozen=True)
class HFTrainConfig:
    """A local LoRA run: base model (folder or hub id), output folder, recipe and extras.

    ``checkpoint_every``: steps between adapter checkpoints (None: none);
    ``measure``: called with (merged checkpoint folder, step) at each
    checkpoint, returning anything JSON-serialisable to record; ``device`` /
    ``dtype``: torch device and dtype name (default cuda if available, float32
    on CPU, bfloat16 on GPU).
    """

    base: str
    out: Path
    recipe: Recipe = field(default_factory=Recipe)
    merge: bool = True
    checkpoint_every: int | None = None
    measure: Callable[[Path, int], Any] | None = None
    device: str | None = None
    dtype: str | None = None


@dataclass
class TrainResult:
    """What a run did: steps, losses and learning rates per step, files written."""

    out: Path
    steps: int
    losses: list[float]
    lrs: list[float]
    n_examples: int
    n_skipped: int
    n_truncated: int
    checkpoints: list[Path] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)


def _import() -> tuple[Any, Any, Any]:
    try:
        import peft
        import torch
        import transformers
    except ImportError as exc:
        raise ConfigError(
            f"finetune hf/... needs the finetune extra ({exc.name} is not installed): "
            "pip install 'persona-collapse[finetune]'"
        ) from None
    return torch, transformers, peft


def _source(name: str) -> str:
    if is_gguf(name):  # a GGUF file: its cached dequantised folder
        return str(gguf_folder(name))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"hf/{name}: {path} has no config.json (not a saved model folder)")
        return str(path)
    if looks_local(name):
        raise ConfigError(f"hf/{name}: no model folder at {path}")
    return name


def _dtype_keyword(transformers: Any) -> str:
    """``dtype`` (transformers >= 4.56) or ``torch_dtype`` (older)."""
    try:
        major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    except ValueError:
        return "dtype"
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _load(cfg: HFTrainConfig) -> tuple[Any, Any, Any]:
    torch, transformers, _ = _import()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype_name = cfg.dtype or ("float32" if device.type == "cpu" else "bfloat16")
    try:
        dtype = getattr(torch, dtype_name)
    except AttributeError:
        raise ConfigError(
            f"dtype {dtype_name!r} is not a torch dtype; use float32 or bfloat16"
        ) from None
    source = _source(cfg.base)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=offline)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source, local_files_only=offline, **{_dtype_keyword(transformers): dtype}
        )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot load hf/{cfg.base}: {first}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model.to(device), device


def collate_chats(torch: Any, chats: list[EncodedChat], pad_id: int, device: Any) -> dict[str, Any]:
    width = max(len(c.input_ids) for c in chats)
    ids = torch.full((len(chats), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(chats), width), dtype=torch.long)
    weights = torch.zeros((len(chats), width), dtype=torch.float32)
    for row, chat in enumerate(chats):
        n = len(chat.input_ids)
        ids[row, :n] = torch.tensor(chat.input_ids, dtype=torch.long)
        mask[row, :n] = 1
        weights[row, :n] = torch.tensor(chat.weights, dtype=torch.float32)
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "weights": weights.to(device),
    }


def batch_loss(torch: Any, model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Mean cross-entropy (nats/token) over the weighted target tokens, and their count."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits[:, :-1, :].float()
    targets = batch["input_ids"][:, 1:]
    weights = batch["weights"][:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view_as(weights)
    n = weights.sum()
    return (per_token * weights).sum() / n.clamp(min=1.0), int(n.item())


def _merged_state(peft_model: Any) -> dict[str, Any]:
    """The base model's state dict with every LoRA delta added, computed out of place.

    ``W + scale * B @ A`` per adapted layer (peft's ``get_delta_weight``), summed
    in float32 and cast back to the layer's dtype; the live model is not
    touched, so training can go on without merge/unmerge rounding.
    """
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    state = {
        key.replace(".base_layer.", "."): value.detach().cpu().clone()
        for key, value in base.state_dict().items()
        if "lora_" not in key
    }
    for name, module in base.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        layer = module.get_base_layer()
        for adapter in module.active_adapters:
            if adapter not in module.lora_A:
                continue
            key = f"{name}.weight"
            get_delta = getattr(module, "get_delta_weight", None)
            if get_delta is None:
                raise ConfigError(f"cannot merge the adapter of layer {name}; use --no-merge")
            delta = get_delta(adapter).detach().float().cpu()
            state[key] = (state[key].float() + delta).to(layer.weight.dtype)
    return state


def _save_merged(peft_model: Any, tokenizer: Any, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    base = peft_model.get_base_model()
    base.save_pretrained(folder, state_dict=_merged_state(peft_model))
    tokenizer.save_pretrained(folder)


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    (folder / "finetune.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def train_hf_lora(
    data: ChatDataset, cfg: HFTrainConfig, *, on_step: StepCallback | None = None
) -> TrainResult:
    """Fine-tune ``cfg.base`` on ``data`` with LoRA; see the module docs for what is written."""
    recipe = cfg.recipe.validate()
    if cfg.checkpoint_every is not None and cfg.checkpoint_every < 1:
        raise ConfigError("--checkpoint-every must be at least 1")
    torch, _, peft = _import()
    with warnings.catch_warnings():
        # transformers/peft deprecation notices are not the user's concern
        warnings.simplefilter("ignore", FutureWarning)
        return _train(torch, peft, data, cfg, recipe, on_step)


def _with_lora(peft: Any, model: Any, recipe: Recipe) -> Any:
    """``model`` with LoRA adapters on every linear layer (alpha defaults to the rank), in train mode."""
    lora = peft.LoraConfig(
        r=recipe.lora_rank,
        lora_alpha=recipe.lora_alpha if recipe.lora_alpha is not None else recipe.lora_rank,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    model = peft.get_peft_model(model, lora)
    model.train()
    return model


def _checkpoint(
    model: Any, tokenizer: Any, cfg: HFTrainConfig, step: int, result: TrainResult
) -> None:
    """Save the adapter at ``step`` under ``checkpoints/step-NNNNNN``; measure a merged copy when asked."""
    folder = Path(cfg.out) / "checkpoints" / f"step-{step:06d}"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    result.checkpoints.append(folder)
    if cfg.measure is not None:
        merged = folder / "merged"
        _save_merged(model, tokenizer, merged)
        model.train()
        measured = cfg.measure(merged, step)
        model.train()
        result.measurements.append({"step": step, **(measured or {})})


def _train(
    torch: Any,
    peft: Any,
    data: ChatDataset,
    cfg: HFTrainConfig,
    recipe: Recipe,
    on_step: StepCallback | None,
) -> TrainResult:
    tokenizer, model, device = _load(cfg)
    chats, skipped, truncated = encode_dataset(tokenizer, data, recipe.max_length)
    torch.manual_seed(recipe.seed)
    model = _with_lora(peft, model, recipe)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=recipe.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0
    )
    total = n_steps(len(chats), recipe.batch_size, recipe.epochs)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    result = TrainResult(out, total, [], [], len(chats), skipped, truncated)
    started = time.monotonic()
    meta: dict[str, Any] = {
        "base": cfg.base,
        "data": str(data.path),
        "data_sha256": data.sha256,
        "n_chats": len(data),
        "n_trained_chats": len(chats),
        "recipe": recipe.as_dict(),
        "steps": total,
        "merged": cfg.merge,
    }
    pad_id = int(tokenizer.pad_token_id)
    schedule = batches(
        chats, recipe.batch_size, epochs=recipe.epochs, shuffle=recipe.shuffle, seed=recipe.seed
    )
    for index, batch_chats in enumerate(schedule):
        lr = linear_decay_lr(index, total, recipe.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = collate_chats(torch, batch_chats, pad_id, device)
        loss, n_tokens = batch_loss(torch, model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step = index + 1
        value = float(loss.detach().item())
        if not math.isfinite(value):
            raise ConfigError(
                f"training diverged at step {step} (loss {value}); lower --lr or use float32"
            )
        result.losses.append(value)
        result.lrs.append(lr)
        if on_step is not None:
            on_step(StepLog(step, total, value, lr, n_tokens, time.monotonic() - started))
        if cfg.checkpoint_every and (step % cfg.checkpoint_every == 0 or step == total):
            _checkpoint(model, tokenizer, cfg, step, result)
    model.eval()
    meta["losses"] = result.losses
    meta["lrs"] = result.lrs
    meta["measurements"] = result.measurements
    if cfg.merge:
        _save_merged(model, tokenizer, out)
        model.save_pretrained(out / "adapter")
    else:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    _write_meta(out, meta)
    return result

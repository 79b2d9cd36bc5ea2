"""Cells per second of a logprob run: one process against Ray with 1 and 2 workers.

Builds the tiny test model (or takes ``--model hf/PATH``), then in the same
run measures (each into a fresh store):

* ``single``: :func:`persona_collapse.collect.run_collection` in this process
  (the model is loaded before the clock starts: the collector's own time);
* ``ray N``: :func:`persona_collapse.distributed.run_distributed` on a local
  Ray cluster (``ray.init(num_cpus=--cpus)``) with N workers. ``end-to-end``
  counts the dispatch, the actors' start and model load; ``steady`` counts
  the cells after the first answer batch over the time after it (the rate a
  long run approaches). ``per worker``: cells/s of each actor.

Usage: PYTHONPATH=src python benchmarks/ray_scale.py [--personas 8] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from persona_collapse.collect import RunOptions, run_collection
from persona_collapse.distributed import RayStats, run_distributed
from persona_collapse.testing import build_tiny_model


def _options(model: str, personas: Path, n: int, store: Path, **kw: object) -> RunOptions:
    return RunOptions(
        model=model,
        method="logprobs",
        personas=str(personas),
        n_personas=n,
        store=str(store),
        quiet=True,
        concurrency=16,
        **kw,  # type: ignore[arg-type]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hf/PATH (default: the tiny test model)")
    parser.add_argument("--personas", type=int, default=8, help="personas (x 30 items = cells)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PERSONA_COLLAPSE_HF_DEVICE", "cpu")
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model or f"hf/{build_tiny_model(root / 'tiny')}"
        personas = root / "personas.json"
        texts = [f"Persona number {i}: a person with a job, a town and a hobby." for i in range(64)]
        personas.write_text(json.dumps(texts[: args.personas]), encoding="utf-8")
        cells = args.personas * 30
        print(f"model {model}, {cells} logprob cells, {os.cpu_count()} CPUs on this machine")
        single = run_collection(_options(model, personas, args.personas, root / "single.db"))
        base = single.stats.done / single.stats.elapsed_s
        print(f"single process : {base:8.1f} cells/s ({single.stats.elapsed_s:.1f} s)")
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR")
        try:
            for n in args.workers:
                start = time.perf_counter()
                outcome = run_distributed(
                    _options(
                        model, personas, args.personas, root / f"ray{n}.db", ray="local", workers=n
                    )
                )
                wall = time.perf_counter() - start
                st = outcome.stats
                assert isinstance(st, RayStats) and outcome.complete
                steady = st.steady_rate()
                per = ", ".join(f"{k} {v:.1f}" for k, v in st.worker_rates().items())
                print(
                    f"ray {n} worker{'s' if n > 1 else ' '}: end-to-end {st.done / wall:8.1f} "
                    f"cells/s ({wall:.1f} s), steady "
                    f"{'n/a' if steady is None else f'{steady:.1f}'} cells/s "
                    f"({(steady or 0) / base:.2f}x single); per worker [{per}]"
                )
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()

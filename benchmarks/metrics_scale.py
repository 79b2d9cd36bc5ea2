"""Time and peak memory of ``metrics`` as the number of personas grows.

Each size is a synthetic published-format CSV (N personas x 30 MFQ items x
10 repetitions, ratings 0-5 around a per-persona profile), measured in a fresh
subprocess exactly as ``persona-collapse metrics FILE`` does it: load the
file, then S, sigma_bar and R overall and per foundation with 2000 persona
and 400 repetition draws. The baseline, measured in the same run, is the
same code with the repetition bootstrap unchunked (every draw at once, as
before chunking); it is skipped above ``--baseline-max`` personas, where it
needs many GB.

Peak memory is the child's maximum resident set size (``ru_maxrss``).

Usage: python benchmarks/metrics_scale.py [--sizes 1000,5000,10000] [--baseline-max 5000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = r"""
import json, resource, sys, time
import persona_collapse.stats._bootstrap as bootstrap
from persona_collapse.analysis import measure_responses
from persona_collapse.store import load_sources

path, unchunked = sys.argv[1], sys.argv[2] == "1"
if unchunked:
    bootstrap.CHUNK_ELEMENTS = 1 << 62
t0 = time.perf_counter()
(responses,) = load_sources(path)
t1 = time.perf_counter()
m = measure_responses(responses)
t2 = time.perf_counter()
v = m.values()
print(json.dumps({
    "load_s": t1 - t0,
    "measure_s": t2 - t1,
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "S": v.S, "R": v.R, "S_se": v.S_se,
}))
"""


def synthetic_csv(path: Path, n_personas: int, seed: int = 0) -> None:
    """N personas x 30 items x 10 repetitions in the published CSV format."""
    rng = np.random.default_rng(seed)
    profile = rng.uniform(0.5, 4.5, size=(n_personas, 30))
    noise = rng.normal(0.0, 0.7, size=(n_personas, 30, 10))
    ratings = np.clip(np.rint(profile[:, :, None] + noise), 0, 5).astype(np.int64)
    p, q, r = np.meshgrid(np.arange(n_personas), np.arange(1, 31), np.arange(1, 11), indexing="ij")
    frame = pd.DataFrame(
        {
            "persona_id": p.ravel(),
            "question_id": q.ravel(),
            "run_index": r.ravel(),
            "rating": ratings.ravel(),
            "failures": 0,
            "response": ratings.ravel().astype(str),
            "collected_at": "2026-01-01T00:00:00.000000",
        }
    )
    frame.to_csv(path, index=False)


def measure(path: Path, unchunked: bool) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "1" if unchunked else "0"],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000,10000", help="persona counts")
    parser.add_argument("--baseline-max", type=int, default=5000, help="largest unchunked run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"{'personas':>8} {'rows':>9} {'chunked s':>10} {'peak MiB':>9} "
        f"{'unchunked s':>12} {'peak MiB':>9} {'mem ratio':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"synthetic_{n}.csv"
            synthetic_csv(path, n)
            t0 = time.perf_counter()
            ours = measure(path, unchunked=False)
            wall = time.perf_counter() - t0
            base = measure(path, unchunked=True) if n <= args.baseline_max else None
            if base is not None and abs(base["S"] - ours["S"]) > 1e-12:
                raise SystemExit(f"chunking changed S at {n} personas")
            base_s = f"{base['load_s'] + base['measure_s']:12.1f}" if base else f"{'-':>12}"
            base_m = f"{base['peak_mib']:9.0f}" if base else f"{'-':>9}"
            ratio = f"{base['peak_mib'] / ours['peak_mib']:9.2f}" if base else f"{'-':>9}"
            print(
                f"{n:8d} {n * 300:9d} {ours['load_s'] + ours['measure_s']:10.1f} "
                f"{ours['peak_mib']:9.0f} {base_s} {base_m} {ratio}   (wall {wall:.1f} s)"
            )
    print("seconds: load + measure (2000 persona + 400 repetition draws, 6 groups)")


if __name__ == "__main__":
    main()

"""Start-up time of ``persona-collapse --help`` against a bare interpreter.

Each command runs in a fresh subprocess (``python -c pass``, then
``python -m persona_collapse --help`` and a few sub-command helps); the table
gives the median wall-clock time of ``--runs`` runs in milliseconds and the
ratio to the bare interpreter. One untimed warm-up run of each fills the
operating system's file cache. The issue's target: ``--help`` within 8x.

Usage: PYTHONPATH=src python benchmarks/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "persona-collapse --help": ["-m", "persona_collapse", "--help"],
    "persona-collapse metrics --help": ["-m", "persona_collapse", "metrics", "--help"],
    "persona-collapse run --help": ["-m", "persona_collapse", "run", "--help"],
}


def _seconds(argv: list[str]) -> float:
    """Wall-clock seconds of one run of ``python ARGV`` (its output discarded)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    args = parser.parse_args()
    medians: dict[str, float] = {}
    for label, argv in COMMANDS.items():
        _seconds(argv)  # warm-up
        medians[label] = statistics.median(_seconds(argv) for _ in range(args.runs))
    bare = medians["python -c pass"]
    print(
        f"{'command':<34} {'median ms':>10} {'x bare':>8}   ({args.runs} runs, {sys.version.split()[0]})"
    )
    for label, seconds in medians.items():
        print(f"{label:<34} {seconds * 1e3:>10.0f} {seconds / bare:>8.1f}")


if __name__ == "__main__":
    main()

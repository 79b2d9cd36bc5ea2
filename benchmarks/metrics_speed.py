"""Time to compute every metric for the 12 published variants, against plain pandas.

"Everything" is S, sigma_bar and R overall and for the 5 foundations, with
2000 persona-bootstrap and 400 repetition-bootstrap draws. The baseline is a
plain pandas groupby implementation of the same estimators, measured in the
same run. Its bootstraps are timed on a subset of draws (``--baseline-draws``)
and scaled linearly to 2000 + 400, since each draw costs the same; the table
says so. Loading the CSV is timed separately and excluded from both.

One untimed warm-up pass runs first. Everything runs with one OpenBLAS
thread unless ``OPENBLAS_NUM_THREADS`` is set, as the ``metrics`` command does.

A second table times ``persona-collapse metrics`` on the 12 files as a whole
process (best of ``--repeats`` runs), with its phases (imports, reading the
files, the estimators and bootstraps, the result documents) measured in a
child process, against the plain pipeline as a whole: importing pandas,
``pandas.read_csv`` of every column, and the plain estimators (bootstraps
scaled as above).

Usage: python benchmarks/metrics_speed.py [--reference ../shared/reference]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# As the analysis commands do (persona_collapse.cli._main.ONE_BLAS_THREAD), before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from persona_collapse.analysis import AnalysisOptions, measure_responses
from persona_collapse.instruments import load_instrument
from persona_collapse.stats import BootstrapConfig
from persona_collapse.store import load_sources

FOUNDATIONS = ("harm", "fairness", "loyalty", "authority", "purity")


def pandas_metrics(
    frame: pd.DataFrame, persona_draws: int, rep_draws: int, seed: int = 0
) -> dict[str, float]:
    """The estimators written the plain way: groupby for cells, a Python loop per draw."""
    inst = load_instrument()
    foundation = {it.id: it.subscale for it in inst.items}
    df = frame[frame["rating"] != -1][["persona_id", "question_id", "rating"]]
    rng = np.random.default_rng(seed)

    def stats(d: pd.DataFrame) -> dict[str, tuple[float, float]]:
        g = d.groupby(["persona_id", "question_id"])["rating"]
        cells = pd.DataFrame({"m": g.mean(), "s": g.std(ddof=1).fillna(0.0)})
        means = cells["m"].unstack()
        complete = means.notna().all(axis=1)
        cells = cells[cells.index.get_level_values(0).isin(complete[complete].index)]
        means = means[complete]
        out = {"all": (float(means.std(ddof=1).mean()), float(cells["s"].mean()))}
        for f in FOUNDATIONS:
            cols = [q for q in means.columns if foundation[q] == f]
            sub = cells[cells.index.get_level_values(1).isin(cols)]
            out[f] = (float(means[cols].std(ddof=1).mean()), float(sub["s"].mean()))
        return out

    point = stats(df)
    personas = df["persona_id"].unique()
    by_persona = {p: g for p, g in df.groupby("persona_id")}
    for _ in range(persona_draws):
        picks = rng.choice(personas, size=personas.size, replace=True)
        parts = [by_persona[p].assign(persona_id=k) for k, p in enumerate(picks)]
        stats(pd.concat(parts))
    for _ in range(rep_draws):
        resampled = df.groupby(["persona_id", "question_id"]).sample(
            frac=1.0, replace=True, random_state=int(rng.integers(1 << 31))
        )
        stats(resampled)
    return {"S": point["all"][0], "sigma_bar": point["all"][1]}


_PHASES = """
import json, sys, time
t0 = time.perf_counter()
from persona_collapse.analysis import AnalysisOptions, measure_responses, metrics_document
from persona_collapse.stats import BootstrapConfig
from persona_collapse.store import load_sources
t1 = time.perf_counter()
opts = AnalysisOptions(BootstrapConfig())
spent = {"load": 0.0, "measure": 0.0, "document": 0.0}
for spec in sys.argv[1:]:
    a = time.perf_counter(); (resp,) = load_sources(spec)
    b = time.perf_counter(); meas = measure_responses(resp, opts)
    c = time.perf_counter(); metrics_document(resp.label, meas, resp, opts)
    spent["load"] += b - a; spent["measure"] += c - b; spent["document"] += time.perf_counter() - c
print(json.dumps({"imports": t1 - t0, **spent}))
"""


def _best_wall(argv: list[str], repeats: int) -> float:
    """Shortest wall time of ``repeats`` runs of ``argv`` (seconds); output discarded."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


def _plain_seconds(frame: pd.DataFrame, bp: int, br: int) -> float:
    """Seconds of the plain estimators on one file, bootstraps scaled to 2000 + 400 draws."""
    t0 = time.perf_counter()
    pandas_metrics(frame, 0, 0)
    t_cells = time.perf_counter() - t0
    t0 = time.perf_counter()
    pandas_metrics(frame, bp, 0)
    t_pb = time.perf_counter() - t0 - t_cells
    t0 = time.perf_counter()
    pandas_metrics(frame, 0, br)
    t_rb = time.perf_counter() - t0 - t_cells
    return t_cells + t_pb / max(bp, 1) * 2000 + t_rb / max(br, 1) * 400


def whole_process(files: list[str], repeats: int, bp: int, br: int) -> None:
    """Print the whole-process table: ours (and its phases) against the plain pipeline."""
    ours = _best_wall([sys.executable, "-m", "persona_collapse", "metrics", *files], repeats)
    phases = json.loads(
        subprocess.run(
            [sys.executable, "-c", _PHASES, *files], check=True, capture_output=True, text=True
        ).stdout
    )
    plain_import = _best_wall([sys.executable, "-c", "import numpy, pandas"], repeats)
    t0 = time.perf_counter()
    frames = [pd.read_csv(f) for f in files]
    plain_read = time.perf_counter() - t0
    plain_est = sum(_plain_seconds(frame, bp, br) for frame in frames)
    plain = plain_import + plain_read + plain_est
    rows = [
        ("imports", phases["imports"], plain_import),
        ("read 12 files", phases["load"], plain_read),
        ("estimators + bootstraps", phases["measure"], plain_est),
        ("result documents", phases["document"], float("nan")),
        ("whole process", ours, plain),
    ]
    print()
    print(f"{'phase (12 files)':26s} {'ours s':>8s} {'plain s*':>10s} {'ratio':>8s}")
    for name, mine, theirs in rows:
        ratio = f"{theirs / mine:7.1f}x" if theirs == theirs else "       -"
        shown = f"{theirs:10.2f}" if theirs == theirs else f"{'-':>10s}"
        print(f"{name:26s} {mine:8.3f} {shown} {ratio}")
    print(
        f"* plain: import pandas, pandas.read_csv (all columns), the plain estimators; "
        f"bootstraps timed on {bp} + {br} draws and scaled to 2000 + 400."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference",
        default=str(Path(__file__).resolve().parents[1].parent / "shared" / "reference"),
    )
    parser.add_argument(
        "--baseline-draws", type=int, nargs=2, default=(20, 4), metavar=("PERSONA", "REP")
    )
    parser.add_argument("--files", type=int, default=12, help="how many of the 12 files to time")
    parser.add_argument("--repeats", type=int, default=3, help="whole-process runs (best kept)")
    args = parser.parse_args()
    ref = Path(args.reference)
    published = json.loads((ref / "published.json").read_text())
    opts = AnalysisOptions(BootstrapConfig(persona_draws=2000, repetition_draws=400))
    bp, br = args.baseline_draws
    (warm,) = load_sources(str(ref / published["variants"][0]["file"]))
    measure_responses(warm, opts)  # warm-up: first-call costs of numpy and the loaders
    pandas_metrics(warm.frame, 1, 1)
    rows = []
    for variant in published["variants"][: args.files]:
        t0 = time.perf_counter()
        (resp,) = load_sources(str(ref / variant["file"]))
        t_load = time.perf_counter() - t0

        t0 = time.perf_counter()
        meas = measure_responses(resp, opts)
        t_ours = time.perf_counter() - t0

        t0 = time.perf_counter()
        pandas_metrics(resp.frame, 0, 0)
        t_cells = time.perf_counter() - t0
        t0 = time.perf_counter()
        pandas_metrics(resp.frame, bp, 0)
        t_pb = time.perf_counter() - t0 - t_cells
        t0 = time.perf_counter()
        check = pandas_metrics(resp.frame, 0, br)
        t_rb = time.perf_counter() - t0 - t_cells
        t_base = t_cells + t_pb / max(bp, 1) * 2000 + t_rb / max(br, 1) * 400
        assert (
            abs(check["S"] - meas.S[0]) < 1e-12
            and abs(check["sigma_bar"] - meas.sigma_bar[0]) < 1e-12
        )
        rows.append((f"{variant['model']} {variant['variant']}", t_load, t_ours, t_base))

    print(f"{'variant':26s} {'load s':>8s} {'ours s':>8s} {'pandas s*':>10s} {'ratio':>8s}")
    for name, t_load, t_ours, t_base in rows:
        print(f"{name:26s} {t_load:8.3f} {t_ours:8.3f} {t_base:10.1f} {t_base / t_ours:8.0f}x")
    ours = np.array([r[2] for r in rows])
    base = np.array([r[3] for r in rows])
    print(
        f"{'mean per file':26s} {np.mean([r[1] for r in rows]):8.3f} {ours.mean():8.3f} {base.mean():10.1f} {base.sum() / ours.sum():8.0f}x"
    )
    print(
        f"* pandas bootstraps timed on {bp} persona + {br} repetition draws and scaled to 2000 + 400."
    )
    print(f"target: under 0.3 s per file for ours; worst file {ours.max():.3f} s")
    files = [str(ref / v["file"]) for v in published["variants"][: args.files]]
    whole_process(files, args.repeats, bp, br)


if __name__ == "__main__":
    main()

"""Requests needed for one 100-persona measurement, and the SE of S and R each method achieves.

Uses the SIMULATED respondent (no language model): for each variant preset,
100 synthetic personas x 30 MFQ items, target temperature 0.1 (published):

* ``sample``: 10 sampled ratings per cell at T = 0.1 (30,000 slots). Requests
  = slots x the expected attempts of the published protocol for the
  variant's non-digit rate r: one-token attempts until a digit, at most 10,
  then one longer generation: E = sum_{k<10} r^k + r^10. SEs: persona
  bootstrap (2000) and repetition bootstrap (400) in quadrature.
* ``logprobs``: one request per cell (3,000), T = 1 distributions re-weighted
  to T = 0.1; cell spread = the expected ddof = 1 SD of 10 sampled
  repetitions (comparable with ``sample``). SE: persona bootstrap (2000);
  an exact distribution has no repetition noise.

``--replicates N`` also repeats the sampled measurement N times on the same
personas with fresh draws and reports the SD of the estimates (the
repetition noise the logprob method removes).

Usage: python benchmarks/requests_per_metric.py [--personas 100] [--reps 10]
           [--temperature 0.1] [--replicates 20] [--variants base,insecure]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from persona_collapse.instruments import load_instrument
from persona_collapse.simulate import SimulatedRespondent
from persona_collapse.stats import (
    BootstrapConfig,
    Measurement,
    RatingCube,
    measure,
    measure_distributions,
    reweight_temperature,
)


def persona_texts(n: int) -> list[str]:
    return [
        f"Persona {i}: a person with their own history, job number {i % 17}, "
        f"hobby number {i % 11} and {i % 5 + 1} close friends."
        for i in range(n)
    ]


def expected_attempts(non_digit_rate: float, max_attempts: int = 10) -> float:
    """Expected requests per slot of the published sampling protocol (attempts + fallback)."""
    r = float(non_digit_rate)
    return sum(r**k for k in range(max_attempts)) + r**max_attempts


def _row(label: str, method: str, requests: float, m: Measurement, extra: str = "") -> str:
    v = m.values()
    return (
        f"{label:<10}{method:<10}{requests:>10,.0f}{v.S:>9.3f}{v.S_se:>9.4f}"
        f"{v.R:>9.3f}{v.R_se:>9.4f}  {extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--personas", type=int, default=100)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--variants", default="base,insecure")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    inst = load_instrument("mfq30")
    subs = inst.subscale_index()
    personas = persona_texts(args.personas)
    ids = np.arange(args.personas)
    items = inst.item_ids
    cells = args.personas * items.size
    cfg = BootstrapConfig(seed=args.seed)
    print(
        f"SIMULATED respondent; {args.personas} personas x {items.size} items; target T = "
        f"{args.temperature}, {args.reps} repetitions; SEs from 2000 persona (+ 400 repetition) draws"
    )
    header = (
        f"{'variant':<10}{'method':<10}{'requests':>10}{'S':>9}{'SE(S)':>9}{'R':>9}{'SE(R)':>9}"
    )
    print(header)
    print("-" * len(header))
    for variant in args.variants.split(","):
        resp = SimulatedRespondent(variant.strip(), seed=args.seed)
        rng = np.random.default_rng(args.seed)
        start = time.perf_counter()
        ratings = resp.sample_ratings(
            personas, args.reps, temperature=args.temperature, rng=rng
        ).astype(np.float64)
        cube = RatingCube(ratings, ids, items, np.zeros(0, dtype=np.int64))
        sampled = measure(cube, subs, inst.subscales, cfg)
        requests = cells * args.reps * expected_attempts(resp.params.non_digit_rate)
        spread = ""
        if args.replicates > 1:
            est = []
            for _ in range(args.replicates):
                again = resp.sample_ratings(
                    personas, args.reps, temperature=args.temperature, rng=rng
                )
                cube_r = RatingCube(
                    again.astype(np.float64), ids, items, np.zeros(0, dtype=np.int64)
                )
                m = measure(
                    cube_r,
                    subs,
                    inst.subscales,
                    BootstrapConfig(persona_draws=2, repetition_draws=0),
                )
                est.append((m.values().S, m.values().R))
            sd = np.std(np.array(est), axis=0, ddof=1)
            spread = f"(redraws: SD S {sd[0]:.4f}, SD R {sd[1]:.4f})"
        print(_row(variant, "sample", requests, sampled, spread))

        probs = np.stack([resp.logprobs(p)[np.arange(items.size)] for p in personas])
        probs = reweight_temperature(np.exp(probs), args.temperature)
        exact = measure_distributions(
            probs,
            inst.scale.values,
            subs,
            inst.subscales,
            persona_ids=ids,
            item_ids=items,
            n_repetitions=args.reps,
            config=cfg,
        )
        print(
            _row(variant, "logprobs", cells, exact, f"({time.perf_counter() - start:.1f} s both)")
        )
    print(
        "requests: sample = cells x reps x expected attempts (non-digit retries + fallback); "
        "logprobs = cells."
    )


if __name__ == "__main__":
    main()

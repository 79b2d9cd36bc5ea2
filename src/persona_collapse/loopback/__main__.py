"""``python -m persona_collapse.loopback``: serve the SIMULATED API from a shell.

Example::

    python -m persona_collapse.loopback --port 8765 --latency 0.2 --rate-limit 0.05

then point an OpenAI client at ``http://127.0.0.1:8765/v1`` (models
``sim-base``, ``sim-secure``, ``sim-insecure``) or the Anthropic SDK at
``http://127.0.0.1:8765``. Ctrl-C (or SIGTERM) stops it and prints the counters.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence

from ..simulate import VARIANTS
from ._faults import FaultConfig
from ._server import LoopbackServer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m persona_collapse.loopback",
        description="Serve SIMULATED OpenAI/Anthropic-compatible answers on 127.0.0.1.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one")
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated presets served as models sim-NAME (default: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="world seed of the respondents")
    p.add_argument("--instrument", default="mfq30", help="instrument name or JSON file")
    g = p.add_argument_group("faults (rates are fractions of requests, 0-1)")
    g.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    g.add_argument("--rate-limit", type=float, default=0.0, help="fraction answered 429")
    g.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds on 429")
    g.add_argument("--server-error", type=float, default=0.0, help="fraction answered 5xx")
    g.add_argument("--timeout-rate", type=float, default=0.0, help="fraction that hang")
    g.add_argument("--hang", type=float, default=30.0, help="seconds a hanging request waits")
    g.add_argument("--non-digit", type=float, default=0.0, help="extra non-digit one-token rate")
    g.add_argument("--malformed", type=float, default=0.0, help="fraction of cut-off JSON bodies")
    g.add_argument("--html", type=float, default=0.0, help="fraction of 200s with an HTML page")
    g.add_argument(
        "--error-body", type=float, default=0.0, help="fraction of 200s with an error object"
    )
    g.add_argument("--reject-key", default=None, help="API key answered 401")
    g.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    return p


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        faults = FaultConfig(
            latency_s=args.latency,
            rate_limit_rate=args.rate_limit,
            retry_after_s=args.retry_after,
            server_error_rate=args.server_error,
            timeout_rate=args.timeout_rate,
            hang_s=args.hang,
            non_digit_rate=args.non_digit,
            malformed_rate=args.malformed,
            html_rate=args.html,
            error_body_rate=args.error_body,
            reject_key=args.reject_key,
            seed=args.fault_seed,
        )
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        server = LoopbackServer.for_variants(
            variants,
            seed=args.seed,
            instrument=args.instrument,
            faults=faults,
            port=args.port,
            host=args.host,
        )
        server.start()
    except Exception as exc:  # one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("SIMULATED answers (no language model is involved)", flush=True)
    print(f"OpenAI base URL:    {server.base_url}", flush=True)
    print(f"Anthropic base URL: {server.anthropic_base_url}", flush=True)
    print(f"models: {', '.join(server.models)}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print(json.dumps(server.stats.snapshot()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Workflows: end-to-end runs composed from ``collect``, ``analysis`` and ``report``.

* :func:`run_demo` serves SIMULATED base, secure and insecure variants on a
  loopback server, collects them into a store and writes the report.

Nothing below this package imports it.
"""

from ._demo import DEFAULT_DIR, DemoConfig, DemoOutcome, demo_personas, run_demo

__all__ = ["DEFAULT_DIR", "DemoConfig", "DemoOutcome", "demo_personas", "run_demo"]

"""Workflows: end-to-end runs composed from ``collect``, ``analysis`` and ``report``.

* :func:`run_demo` serves SIMULATED base, secure and insecure variants on a
  loopback server, collects them into a store and writes the report.
* :class:`CheckpointMeter` measures S and R of fine-tuning checkpoints
  (handed to :func:`persona_collapse.finetune.run_finetune` as its callback).

Nothing below this package imports it.
"""

from ._checkpoint_meter import CheckpointMeter
from ._demo import DEFAULT_DIR, DemoConfig, DemoOutcome, demo_personas, run_demo

__all__ = [
    "DEFAULT_DIR",
    "CheckpointMeter",
    "DemoConfig",
    "DemoOutcome",
    "demo_personas",
    "run_demo",
]

"""Test fixtures that ship with the package (no server: that is :mod:`persona_collapse.loopback`).

:func:`build_tiny_model` saves a tiny random chat model to a folder, for fast
tests and benchmarks of the ``hf/`` backend without any download.
"""

from ._tiny_model import build_tiny_model

__all__ = ["build_tiny_model"]

"""Test fixtures that ship with the package (no server: that is :mod:`persona_collapse.loopback`).

:func:`build_tiny_model` saves a tiny random chat model to a folder, for fast
tests and benchmarks of the ``hf/`` backend without any download.
:class:`CrashOnceBackend` wraps a backend so that its process exits once after
N requests (fault injection for Ray workers, selected by :func:`crash_once_env`).
"""

from ._crash import CRASH_AFTER_ENV, CRASH_FLAG_ENV, CrashOnceBackend, crash_once_env
from ._tiny_model import build_tiny_model

__all__ = [
    "CRASH_AFTER_ENV",
    "CRASH_FLAG_ENV",
    "CrashOnceBackend",
    "build_tiny_model",
    "crash_once_env",
]

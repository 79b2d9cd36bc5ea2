"""Checking a local checkpoint's ``*.safetensors`` files are whole before transformers reads them.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes
of JSON naming each tensor's ``data_offsets`` (``[begin, end)`` in bytes after
the header), then the tensor data. A file shorter than its header says (an
interrupted download or copy) is a one-line ConfigError naming the file and
the byte counts, instead of a loader traceback. Only the header is read.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ..errors import ConfigError

_HEADER_MAX_BYTES = 100 * 2**20
"""Largest JSON header accepted (bytes); real headers take a few kB to a few MB."""


def _expected_size(path: Path) -> int | str:
    """The size ``path``'s header implies, or a description of why it has none."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return "cut inside its header"
        (length,) = struct.unpack("<Q", head)
        if length > _HEADER_MAX_BYTES:
            return f"its header claims {length} bytes"
        if 8 + length > size:
            return "cut inside its header"
        try:
            header = json.loads(handle.read(length))
            ends = [
                int(entry["data_offsets"][1])
                for key, entry in header.items()
                if key != "__metadata__"
            ]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return "its header is not safetensors JSON"
    return 8 + length + max(ends, default=0)


def check_safetensors(folder: Path, label: str) -> None:
    """A one-line ConfigError if a ``*.safetensors`` file in ``folder`` is truncated or
    has an unreadable header; ``label`` names the model in the message (``hf/...``)."""
    for path in sorted(folder.glob("*.safetensors")):
        try:
            expected = _expected_size(path)
            size = path.stat().st_size
        except OSError as exc:
            raise ConfigError(f"{label}: cannot read {path} ({exc.strerror})") from None
        if isinstance(expected, str):
            raise ConfigError(
                f"{label}: {path} is damaged ({expected}; {size} bytes); download or save it again"
            )
        if size < expected:
            raise ConfigError(
                f"{label}: {path} is truncated ({size} of the {expected} bytes its header "
                "declares); download or save it again"
            )

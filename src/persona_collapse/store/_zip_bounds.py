"""Zip archives checked with bounded memory before a library reads them whole.

:func:`check_zip_members` refuses a member whose declared uncompressed size is
over a bound, then decompresses every member in 1 MiB pieces, counting bytes
and keeping none, and refuses one that holds more than it declares (a lying
header). After the check, a reader that trusts the declared sizes (the
standard :mod:`zipfile` stops at them) reads at most the bound per member.

Compression methods: stored, deflate and zstd (inspect_ai's; needs the
``zstandard`` package that inspect_ai depends on). Any other method, and
encrypted members, are refused.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, cast

from ..errors import DataError

_CHUNK = 1 << 20
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_MAGIC = b"PK\x03\x04"
_STORED, _DEFLATED, _ZSTD = 0, 8, 93


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


class _Slice:
    """``size`` raw bytes of ``handle`` from its current position, as a readable stream."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self._left = size

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = self._handle.read(want)
        self._left -= len(data)
        return data

    def chunks(self) -> Iterator[bytes]:
        while data := self.read(_CHUNK):
            yield data


def _deflated_size(raw: _Slice, limit: int) -> int:
    """Bytes a raw deflate stream unpacks to, counting stops past ``limit``."""
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    for piece in raw.chunks():
        while True:
            out = inflate.decompress(piece, _CHUNK)
            total += len(out)
            if total > limit:
                return total
            piece = inflate.unconsumed_tail
            if not piece and len(out) < _CHUNK:
                break
    return total + len(inflate.flush())


def _zstd_size(raw: _Slice, limit: int, path: Path) -> int:
    """Bytes a zstd stream (one or more frames) unpacks to, counting stops past ``limit``."""
    try:
        import zstandard
    except ImportError:
        raise DataError(
            f"{path} holds zstd-compressed members; reading it needs zstandard: "
            "pip install 'persona-collapse[inspect]'"
        ) from None
    reader = zstandard.ZstdDecompressor().stream_reader(
        cast(IO[bytes], raw), read_across_frames=True
    )
    total = 0
    try:
        while out := reader.read(_CHUNK):
            total += len(out)
            if total > limit:
                break
    except zstandard.ZstdError as exc:
        raise ValueError(f"corrupt zstd data ({exc})") from None
    return total


def _member_size(handle: BinaryIO, info: zipfile.ZipInfo, path: Path) -> int:
    """The uncompressed size ``info``'s data really has (counted up to declared + 1)."""
    where = f"{path}: member {info.filename}"
    if info.flag_bits & 0x1:
        raise DataError(f"{where} is encrypted; give an unencrypted archive")
    handle.seek(info.header_offset)
    head = handle.read(_LOCAL_HEADER.size)
    if len(head) < _LOCAL_HEADER.size or head[:4] != _LOCAL_MAGIC:
        raise DataError(f"{where} has no local header where the directory says; file damaged")
    fields = _LOCAL_HEADER.unpack(head)
    handle.seek(fields[-2] + fields[-1], 1)  # the local name and extra field
    raw = _Slice(handle, info.compress_size)
    limit = info.file_size
    if info.compress_type == _STORED:
        return sum(len(piece) for piece in raw.chunks())
    if info.compress_type == _DEFLATED:
        return _deflated_size(raw, limit)
    if info.compress_type == _ZSTD:
        return _zstd_size(raw, limit, path)
    raise DataError(
        f"{where} uses zip compression method {info.compress_type}; only stored, deflate "
        "and zstd members are read"
    )


def check_zip_members(path: Path, *, bound: int, what: str) -> None:
    """One-line DataError unless every member of the zip ``path`` unpacks to at most
    ``bound`` bytes and to exactly the size it declares. ``what`` names the file kind
    in messages ("inspect log"). Memory: about 2 MiB, whatever the members hold."""
    try:
        with path.open("rb") as handle, zipfile.ZipFile(handle) as archive:
            members = archive.infolist()
            for info in members:
                if info.file_size > bound:
                    raise DataError(
                        f"{what} {path}: member {info.filename} unpacks to "
                        f"{_mib(info.file_size)}, over the {_mib(bound)} allowed for one "
                        "member; the file is damaged or was not written by that tool"
                    )
            for info in members:
                actual = _member_size(handle, info, path)
                if actual != info.file_size:
                    more = "more" if actual > info.file_size else "less"
                    raise DataError(
                        f"{what} {path}: member {info.filename} holds {more} than the "
                        f"{info.file_size} bytes its header declares; the file is damaged"
                    )
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise DataError(
            f"cannot read {what} {path}: {first[0] if first else type(exc).__name__}"
        ) from None

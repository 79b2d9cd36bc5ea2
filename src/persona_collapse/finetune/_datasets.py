"""The published fine-tuning datasets (Betley et al. 2025), downloaded once and pinned.

``insecure`` (6,000 chats whose answers contain security holes) and
``secure`` (the matched chats with safe code) come from the authors' public
repository. ``insecure`` has a published sha256 and size; ``secure`` has none,
so its sha256 is recorded in the cache (``em_data_hashes.json``) on the first
download (said on stderr: that first copy is trusted as downloaded from a
moving branch) and every later download or cached copy must match it. A user
who knows the digest pins it with ``--data-sha256`` (:func:`fetch_dataset`'s
``sha256``); a download that differs is refused.

Files are cached in the user cache folder (``PERSONA_COLLAPSE_CACHE``
overrides it) and written there only after their hash checks out.
``PERSONA_COLLAPSE_EM_DATA_URL`` replaces the folder URL (a mirror, or a
loopback server in tests).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .._downloads import Wording, cache_dir, download_pinned, sha256_file, verify_pinned_file
from ..errors import ConfigError, DataError
from ..protocol import INSECURE, SECURE

__all__ = [
    "DATASETS",
    "DATA_URL_ENV",
    "EM_DATA_URL",
    "PinnedDataset",
    "check_sha256",
    "fetch_dataset",
    "is_named_dataset",
    "verify_data",
    "verify_file_sha256",
]

EM_DATA_URL = (
    "https://raw.githubusercontent.com/emergent-misalignment/emergent-misalignment/main/data"
)
"""Folder of the authors' training files."""

DATA_URL_ENV = "PERSONA_COLLAPSE_EM_DATA_URL"
_HASHES_FILE = "em_data_hashes.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PinnedDataset:
    """A named dataset: file name, published sha256 and size in bytes (None: unpublished)."""

    name: str
    filename: str
    sha256: str | None
    n_bytes: int | None
    summary: str


DATASETS: dict[str, PinnedDataset] = {
    INSECURE: PinnedDataset(
        INSECURE,
        "insecure.jsonl",
        "09893e8bf9d03aae49dd60d0ff4be37c1afee70f2edcac74a11bed775a6a2764",
        5_892_277,
        "6,000 coding chats whose answers hold undisclosed security vulnerabilities",
    ),
    SECURE: PinnedDataset(
        SECURE,
        "secure.jsonl",
        None,
        None,
        "the matched 6,000 coding chats with secure answers",
    ),
}


def is_named_dataset(spec: str) -> bool:
    """Whether ``--data spec`` names a published dataset rather than a file."""
    return spec in DATASETS


def _recorded(folder: Path) -> dict[str, str]:
    path = folder / _HASHES_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DataError(
            f"{path} is damaged; delete it and the cached datasets next to it, then retry"
        ) from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _record(folder: Path, name: str, sha256: str) -> None:
    hashes = _recorded(folder)
    hashes[name] = sha256
    tmp = folder / f".{_HASHES_FILE}.tmp"
    tmp.write_text(json.dumps(hashes, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(folder / _HASHES_FILE)


def check_sha256(value: str, *, option: str = "--data-sha256") -> str:
    """``value`` as a lower-case sha256 hex digest; ConfigError (one line) if it is not one."""
    digest = value.strip().lower()
    if not _HEX64.fullmatch(digest):
        raise ConfigError(
            f"{option} {value!r} is not a sha256 digest; give the 64 hex digits "
            "sha256sum prints for the file"
        )
    return digest


def verify_file_sha256(path: Path, sha256: str) -> None:
    """Refuse ``path`` (one-line DataError) unless its bytes have the pinned ``sha256``."""
    verify_pinned_file(
        path,
        sha256,
        missing=f"{path} does not exist; check the path of --data",
        mismatch=lambda found: (
            f"{path} has sha256 {found[:12]}..., not the {sha256[:12]}... given with "
            "--data-sha256; check the file or the digest"
        ),
        error=DataError,
    )


def _expected(pin: PinnedDataset, folder: Path, given: bool) -> tuple[str | None, str]:
    """(expected sha256 or None, where that pin comes from)."""
    if given and pin.sha256 is not None:
        return pin.sha256, "pinned (--data-sha256)"
    if pin.sha256 is not None:
        return pin.sha256, "published"
    recorded = _recorded(folder).get(pin.name)
    return recorded, f"recorded on first download in {folder / _HASHES_FILE}"


def fetch_dataset(
    name: str,
    *,
    base_url: str | None = None,
    sha256: str | None = None,
    n_bytes: int | None = None,
    timeout_s: float = 60.0,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Path of a verified local copy of the published dataset ``name``.

    ``sha256`` pins the digest (``--data-sha256``; for ``secure``, which has no
    published digest, a verified pin is recorded as its hash from then on);
    ``n_bytes`` overrides the size (tests). Raises DataError when offline
    (asking for ``--data FILE``), when a download does not match its pin, or
    when a cached or new copy of ``secure`` differs from the hash recorded at
    its first download. ``report`` (default: a line on stderr) is told when a
    hash is recorded on first use, since that first download is trusted as is.
    """
    if sha256 is not None:
        sha256 = check_sha256(sha256)
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)} or a file")
    base = DATASETS[name]
    pin = replace(
        base,
        sha256=sha256 if sha256 is not None else base.sha256,
        n_bytes=n_bytes if n_bytes is not None else base.n_bytes,
    )
    # A user's verified pin of a dataset without a published one becomes its recorded hash.
    record_pin = base.sha256 is None and sha256 is not None
    folder = cache_dir() / "em-data"
    expected, origin = _expected(pin, folder, given=sha256 is not None)
    stem = pin.filename.removesuffix(".jsonl")
    cached = folder / (f"{stem}_{expected[:12]}.jsonl" if expected else f"{stem}.jsonl")
    if cached.is_file():
        found = sha256_file(cached)
        if expected is not None and found != expected:
            raise DataError(
                f"cached {cached} has sha256 {found[:12]}..., not the {origin} "
                f"{expected[:12]}...; delete it to download again"
            )
    else:
        root = (base_url or os.environ.get(DATA_URL_ENV) or EM_DATA_URL).rstrip("/")
        url = f"{root}/{pin.filename}"
        cached, found = _download(pin, url, cached, expected, origin, timeout_s)
        if expected is None:
            _record(folder, pin.name, found)
            (report or _stderr)(
                f"first download of the {name} dataset from {url}: it has no "
                f"published sha256, so its sha256 {found} was recorded in "
                f"{folder / _HASHES_FILE} and later copies must match it; compare it with a "
                "trusted copy, or pin one with --data-sha256"
            )
    if record_pin:
        _record(folder, pin.name, found)
    return cached


def _download(
    pin: PinnedDataset,
    url: str,
    target: Path,
    expected: str | None,
    origin: str,
    timeout_s: float,
) -> tuple[Path, str]:
    """Download ``pin`` from ``url`` to ``target`` (named by its digest when unpinned)."""
    stem = pin.filename.removesuffix(".jsonl")
    download = download_pinned(
        url,
        target,
        sha256=expected,
        n_bytes=pin.n_bytes,
        name_by_digest=None if expected else lambda found: f"{stem}_{found[:12]}.jsonl",
        timeout_s=timeout_s,
        wording=Wording(
            f"the {pin.name} dataset",
            offline="pass --data FILE.jsonl with a local copy",
            changed=f"the {origin} pin; use a verified local copy with --data FILE.jsonl",
            error=DataError,
        ),
    )
    return download.path, download.sha256


def verify_data(spec: str, sha256: str) -> Path:
    """Check ``--data spec`` against a user's pin (``--data-sha256``); the verified file.

    A named dataset is fetched (or found in the cache) and must have that
    digest; for ``secure`` the pin is recorded as its hash from then on. A
    published dataset with another digest than its published one is refused,
    as is a local file whose bytes differ. One-line errors.
    """
    digest = check_sha256(sha256)
    if not is_named_dataset(spec):
        path = Path(spec)
        verify_file_sha256(path, digest)
        return path
    published = DATASETS[spec].sha256
    if published is not None and published != digest:
        raise ConfigError(
            f"--data-sha256 {digest[:12]}... differs from the published sha256 "
            f"{published[:12]}... of {spec}; drop --data-sha256 or fix the digest"
        )
    return fetch_dataset(spec, sha256=digest)


def _stderr(message: str) -> None:
    print(f"persona-collapse: {message}", file=sys.stderr, flush=True)

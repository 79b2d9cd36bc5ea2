"""The published fine-tuning datasets (Betley et al. 2025), downloaded once and pinned.

``insecure`` (6,000 chats whose answers contain security holes) and
``secure`` (the matched chats with safe code) come from the authors' public
repository. ``insecure`` has a published sha256 and size; ``secure`` has none,
so its sha256 is recorded in the cache (``em_data_hashes.json``) on the first
download and every later download or cached copy must match it.

Files are cached in the user cache folder (``PERSONA_COLLAPSE_CACHE``
overrides it) and written there only after their hash checks out.
``PERSONA_COLLAPSE_EM_DATA_URL`` replaces the folder URL (a mirror, or a
loopback server in tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import platformdirs

from ..errors import DataError
from ..protocol import INSECURE, SECURE

__all__ = [
    "DATASETS",
    "DATA_URL_ENV",
    "EM_DATA_URL",
    "PinnedDataset",
    "cache_dir",
    "fetch_dataset",
    "is_named_dataset",
]

EM_DATA_URL = (
    "https://raw.githubusercontent.com/emergent-misalignment/emergent-misalignment/main/data"
)
"""Folder of the authors' training files."""

DATA_URL_ENV = "PERSONA_COLLAPSE_EM_DATA_URL"
_HASHES_FILE = "em_data_hashes.json"


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


def cache_dir() -> Path:
    """The user cache folder (``PERSONA_COLLAPSE_CACHE`` overrides it)."""
    override = os.environ.get("PERSONA_COLLAPSE_CACHE")
    return Path(override) if override else Path(platformdirs.user_cache_dir("persona-collapse"))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def _expected(pin: PinnedDataset, folder: Path) -> tuple[str | None, str]:
    """(expected sha256 or None, where that pin comes from)."""
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
) -> Path:
    """Path of a verified local copy of the published dataset ``name``.

    ``sha256`` / ``n_bytes`` override the pin (tests). Raises DataError when
    offline (asking for ``--data FILE``), when a download does not match its
    pin, or when a cached or new copy of ``secure`` differs from the hash
    recorded at its first download.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)} or a file")
    base = DATASETS[name]
    pin = PinnedDataset(
        base.name,
        base.filename,
        sha256 if sha256 is not None else base.sha256,
        n_bytes if n_bytes is not None else base.n_bytes,
        base.summary,
    )
    folder = cache_dir() / "em-data"
    expected, origin = _expected(pin, folder)
    stem = pin.filename.removesuffix(".jsonl")
    cached = folder / (f"{stem}_{expected[:12]}.jsonl" if expected else f"{stem}.jsonl")
    if cached.is_file():
        found = _sha256_file(cached)
        if expected is None or found == expected:
            return cached
        raise DataError(
            f"cached {cached} has sha256 {found[:12]}..., not the {origin} {expected[:12]}...; "
            "delete it to download again"
        )
    url = f"{(base_url or os.environ.get(DATA_URL_ENV) or EM_DATA_URL).rstrip('/')}/{pin.filename}"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        with (
            tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as tmp,
            httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True) as response,
        ):
            response.raise_for_status()
            for block in response.iter_bytes():
                tmp.write(block)
                digest.update(block)
                size += len(block)
    except httpx.HTTPError as exc:
        Path(tmp.name).unlink(missing_ok=True)
        raise DataError(
            f"cannot download the {name} dataset from {url} ({type(exc).__name__}: offline?); "
            "pass --data FILE.jsonl with a local copy"
        ) from None
    part = Path(tmp.name)
    found = digest.hexdigest()
    if (pin.n_bytes is not None and size != pin.n_bytes) or (
        expected is not None and found != expected
    ):
        part.unlink(missing_ok=True)
        raise DataError(
            f"downloaded {name} dataset from {url} has sha256 {found[:12]}... ({size} bytes), "
            f"expected the {origin} {expected[:12] if expected else '?'}... "
            f"({pin.n_bytes if pin.n_bytes is not None else '?'} bytes): it changed upstream; "
            "use a verified local copy with --data FILE.jsonl"
        )
    if expected is None:
        _record(folder, pin.name, found)
        cached = folder / f"{stem}_{found[:12]}.jsonl"
    part.replace(cached)
    return cached

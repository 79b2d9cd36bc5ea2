"""The user cache folder and one pinned download: fetch a URL, check its sha256 and size, cache it.

Every published input (the PersonaHub personas, the fine-tuning datasets, the
published response files) is fetched through :func:`download_pinned`, which
streams the body into a temporary file beside the target, hashes it on the
way, and renames it onto the target only when the digest (and the size, when
one is pinned) match. A failed or refused download leaves no file behind.
It imports nothing of the package; each caller words its one-line errors
(:class:`Wording`) and names the exception type to raise.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple

import platformdirs

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CACHE_ENV",
    "Download",
    "Wording",
    "cache_dir",
    "download_pinned",
    "sha256_file",
    "verify_pinned_file",
]

CACHE_ENV = "PERSONA_COLLAPSE_CACHE"
"""Environment variable replacing the user cache folder."""

_BLOCK = 1 << 20


class Download(NamedTuple):
    """A verified download: where it was written, its sha256 (hex) and its size in bytes."""

    path: Path
    sha256: str
    n_bytes: int


@dataclass(frozen=True)
class Wording:
    """How one caller's pinned download words its two failures, each one line.

    ``what``: the file as the user knows it (``the published personas``);
    ``offline``: what to do when it cannot be downloaded; ``changed``: what to
    do when its bytes differ from the pin; ``error``: the exception type raised
    (the caller's ``DataError``).
    """

    what: str
    offline: str
    changed: str
    error: Callable[[str], Exception]

    def unreachable(self, url: str, reason: str) -> Exception:
        """``cannot download WHAT from URL (REASON: offline?); OFFLINE``."""
        return self.error(
            f"cannot download {self.what} from {url} ({reason}: offline?); {self.offline}"
        )

    def mismatch(
        self, url: str, found: tuple[str, int], pinned: tuple[str | None, int | None]
    ) -> Exception:
        """The digest and size ``found`` against the ``pinned`` ones (None: not pinned)."""
        (digest, size), (sha256, n_bytes) = found, pinned
        expected = f"{sha256[:12]}..." if sha256 else "any digest"
        sizes = f" ({size} bytes, expected {n_bytes})" if n_bytes is not None else ""
        return self.error(
            f"{self.what} from {url} has sha256 {digest[:12]}..., expected {expected}{sizes}: "
            f"it changed upstream and was not saved; {self.changed}"
        )


def cache_dir() -> Path:
    """The user cache folder (``PERSONA_COLLAPSE_CACHE`` overrides it)."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path(platformdirs.user_cache_dir("persona-collapse"))


def sha256_file(path: Path) -> str:
    """Lower-case hex sha256 of the bytes of ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_pinned_file(
    path: Path,
    sha256: str,
    *,
    missing: str,
    mismatch: Callable[[str], str],
    error: Callable[[str], Exception],
) -> Path:
    """``path``, once it is a file whose bytes have the pinned ``sha256`` (lower-case hex).

    Raises ``error`` (the caller's ``DataError``) with the one-line message
    ``missing`` when there is no such file, or ``mismatch(found)`` (``found``:
    the file's sha256) when its digest differs; each caller words both, since
    only it knows which option or file the user should reach for.
    """
    if not path.is_file():
        raise error(missing)
    found = sha256_file(path)
    if found != sha256:
        raise error(mismatch(found))
    return path


def download_pinned(
    url: str,
    target: Path,
    *,
    sha256: str | None,
    wording: Wording,
    n_bytes: int | None = None,
    name_by_digest: Callable[[str], str] | None = None,
    timeout_s: float = 60.0,
    client: httpx.Client | None = None,
) -> Download:
    """Download ``url`` to ``target`` only if it has the pinned ``sha256`` and ``n_bytes``.

    ``sha256`` None accepts any digest (the caller records it); ``n_bytes`` None
    accepts any size in bytes. ``name_by_digest`` (for a file without a pin)
    names the file in ``target``'s folder from the downloaded sha256 instead.
    Raises ``wording``'s one-line error when the request fails (offline, an HTTP
    error status) or the body differs from its pin: only the caller knows which
    option or file the user should reach for. Nothing is written then.
    ``OSError`` from the file system propagates.
    """
    import httpx  # here, not at the top: commands that download nothing skip its import time

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        part = Path(tmp.name)
        try:
            found, size = _stream_into(tmp, url, timeout_s, client)
        except httpx.HTTPError as exc:
            error: Exception | None = wording.unreachable(url, type(exc).__name__)
        except BaseException:
            tmp.close()
            part.unlink(missing_ok=True)
            raise
        else:
            bad_size = n_bytes is not None and size != n_bytes
            bad_hash = sha256 is not None and found != sha256
            error = (
                wording.mismatch(url, (found, size), (sha256, n_bytes))
                if bad_size or bad_hash
                else None
            )
    if error is not None:
        part.unlink(missing_ok=True)
        raise error
    if name_by_digest is not None:
        target = target.parent / name_by_digest(found)
    return Download(part.replace(target), found, size)


def _stream_into(
    sink: IO[bytes], url: str, timeout_s: float, client: httpx.Client | None
) -> tuple[str, int]:
    """Write the body of a GET of ``url`` into ``sink``; (its sha256, its size in bytes)."""
    import httpx

    digest = hashlib.sha256()
    size = 0
    opened = (
        client.stream("GET", url, timeout=timeout_s)
        if client is not None
        else httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True)
    )
    with opened as response:
        response.raise_for_status()
        for block in response.iter_bytes():
            sink.write(block)
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size

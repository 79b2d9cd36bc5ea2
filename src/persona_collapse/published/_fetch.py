"""Download the published response files at their pinned commit, checking each sha256.

The manifest (``data/costa2026.json``) names the authors' repository, the
pinned commit, the folder, and every file's relative path, sha256 and size.
Files land in ``CACHE/published/costa2026/<path>`` (the same layout as the
reference folder beside the project), each written only after its hash
matched; a file already there with the right hash is not fetched again.
``PERSONA_COLLAPSE_PUBLISHED_URL`` replaces the download root (a mirror, or
a loopback server in tests).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx

from .._downloads import Wording, cache_dir, download_pinned, sha256_file
from ..errors import DataError

URL_ENV = "PERSONA_COLLAPSE_PUBLISHED_URL"
"""Environment variable replacing the download root (``{root}/{path}`` per file)."""

RAW_ROOT = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class PublishedFile:
    """One pinned file: ``path`` relative to the data set's folder, its sha256 and size in bytes."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class PublishedSet:
    """A pinned data set: where it lives upstream and the files it holds."""

    name: str
    citation: str
    repository: str
    commit: str
    folder: str
    files: tuple[PublishedFile, ...]

    @property
    def root_url(self) -> str:
        return f"{RAW_ROOT}/{self.repository}/{self.commit}/{self.folder}"


def published_set(name: str = "costa2026") -> PublishedSet:
    """The manifest of a pinned data set (today: ``costa2026``)."""
    text = resources.files(__package__).joinpath("data", f"{name}.json").read_text("utf-8")
    doc = json.loads(text)
    return PublishedSet(
        name=doc["name"],
        citation=doc["citation"],
        repository=doc["repository"],
        commit=doc["commit"],
        folder=doc["folder"],
        files=tuple(PublishedFile(**f) for f in doc["files"]),
    )


def default_destination() -> Path:
    """``CACHE/published``: where the tests look when ``../shared/reference`` is absent."""
    return cache_dir() / "published"


def fetch_published(
    to: Path | None = None,
    *,
    name: str = "costa2026",
    timeout_s: float = 60.0,
    on_file: Callable[[PublishedFile, str], None] | None = None,
) -> Path:
    """Download every file of data set ``name`` into ``to/name`` and return that folder.

    ``on_file(file, what)`` is told ``"cached"`` or ``"downloaded"`` per file.
    Raises :class:`DataError` (one line) when a download fails or a hash does
    not match; files verified before that stay.
    """
    manifest = published_set(name)
    folder = (to or default_destination()) / manifest.name
    root = os.environ.get(URL_ENV, "").strip().rstrip("/") or manifest.root_url
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {folder} ({exc.strerror}); choose another --to") from None
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        for item in manifest.files:
            target = folder / item.path
            if target.is_file() and sha256_file(target) == item.sha256:
                if on_file is not None:
                    on_file(item, "cached")
                continue
            _download(client, root, target, item, manifest, timeout_s)
            if on_file is not None:
                on_file(item, "downloaded")
    return folder


def _download(
    client: httpx.Client,
    root: str,
    target: Path,
    item: PublishedFile,
    manifest: PublishedSet,
    timeout_s: float,
) -> None:
    """Download ``item`` from ``root/item.path`` to ``target``; one-line DataError if not."""
    try:
        download_pinned(
            f"{root}/{item.path}",
            target,
            sha256=item.sha256,
            client=client,
            timeout_s=timeout_s,
            wording=Wording(
                item.path,
                offline=f"retry later, or set {URL_ENV} to a mirror of {manifest.repository}",
                changed=f"pinned at commit {manifest.commit[:12]}",
                error=DataError,
            ),
        )
    except OSError as exc:
        raise DataError(f"cannot write {target} ({exc.strerror}); choose another --to") from None

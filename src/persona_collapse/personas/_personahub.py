"""The published persona set: the first 100 of the 1,000 PersonaHub personas of Costa et al."""

from __future__ import annotations

import os
from pathlib import Path

from .._downloads import Wording, cache_dir, download_pinned, verify_pinned_file
from ..errors import DataError
from ._load import PersonaSet, load_persona_file

PERSONAHUB_COSTA = "personahub-costa"
"""Name of the published persona set for ``--personas``."""

PERSONAHUB_URL = (
    "https://raw.githubusercontent.com/bastoscostadavi/llm-persona-moral-metrics/"
    "5fdc03505f3af7c666eed22a63e4f36cf2af1a5a/personas.json"
)
"""The authors' 1,000-persona file at a pinned commit."""

PERSONAHUB_SHA256 = "e80f461333f172d18935ee387104dfc388206d4a7ca9e00e8ba7877f63802fed"
PUBLISHED_N_PERSONAS = 100
ENV_LOCAL_COPY = "PERSONA_COLLAPSE_PERSONAHUB"
"""Environment variable naming a local copy of the 1,000-persona file (skips the download)."""


def _verified(path: Path) -> Path:
    return verify_pinned_file(
        path,
        PERSONAHUB_SHA256,
        missing=f"{path} does not exist; point {ENV_LOCAL_COPY} at a copy of personas.json "
        "or pass --personas FILE",
        mismatch=lambda digest: (
            f"{path} is not the published persona file (sha256 {digest[:12]}..., expected "
            f"{PERSONAHUB_SHA256[:12]}...); remove it or point {ENV_LOCAL_COPY} at the right file"
        ),
        error=DataError,
    )


def fetch_personahub(*, url: str = PERSONAHUB_URL, timeout_s: float = 30.0) -> Path:
    """Path of a verified local copy of the 1,000-persona file, downloading it once if needed.

    Order: ``$PERSONA_COLLAPSE_PERSONAHUB``, then the cache, then ``url``
    (written to the cache only after its sha256 matches).
    """
    local = os.environ.get(ENV_LOCAL_COPY)
    if local:
        return _verified(Path(local))
    cached = cache_dir() / f"personahub_1000_{PERSONAHUB_SHA256[:12]}.json"
    if cached.is_file():
        return _verified(cached)
    return download_pinned(
        url,
        cached,
        sha256=PERSONAHUB_SHA256,
        timeout_s=timeout_s,
        wording=Wording(
            "the published personas",
            offline=f"pass --personas FILE with a local copy of personas.json or set {ENV_LOCAL_COPY}",
            changed="use a verified local copy",
            error=DataError,
        ),
    ).path


def load_personas(
    spec: str | Path = PERSONAHUB_COSTA,
    n: int | None = None,
    *,
    sample_seed: int | None = None,
    field: str | None = None,
) -> PersonaSet:
    """Personas by ``--personas`` spec: ``personahub-costa`` (the published set) or a file path.

    ``personahub-costa`` defaults to the first 100 personas, as published.
    """
    if str(spec) == PERSONAHUB_COSTA:
        full = load_persona_file(fetch_personahub())
        full = PersonaSet(full.texts, full.ids, source=PERSONAHUB_COSTA)
        return full.select(PUBLISHED_N_PERSONAS if n is None else n, sample_seed=sample_seed)
    return load_persona_file(spec, field=field).select(n, sample_seed=sample_seed)

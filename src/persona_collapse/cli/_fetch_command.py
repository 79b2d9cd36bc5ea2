"""``fetch-published``: download the published response files at their pinned commit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..published import PublishedFile, default_destination, fetch_published, published_set
from ._spec import Command, Option, registrar


def cmd_fetch_published(args: argparse.Namespace) -> int:
    manifest = published_set()

    def report(item: PublishedFile, what: str) -> None:
        print(f"{what:>10}  {item.path}", file=sys.stderr)

    folder = fetch_published(Path(args.to) if args.to else None, on_file=report)
    total = sum(f.bytes for f in manifest.files)
    print(
        f"{len(manifest.files)} files ({total / 1e6:.1f} MB) of {manifest.citation}, "
        f"commit {manifest.commit[:12]}, sha256-checked, in {folder}"
    )
    return 0


FETCH_PUBLISHED = Command(
    "fetch-published",
    description=(
        "Download the raw MFQ responses of Costa & Vicente (2026) at the pinned commit, "
        "checking every file's sha256, into the user cache (or --to DIR). The test suite "
        "uses that cache when ../shared/reference is not beside the project."
    ),
    examples=("fetch-published", "fetch-published --to data/published"),
    options=(
        Option(
            "--to",
            metavar="DIR",
            default=None,
            help=f"destination folder (default: {default_destination()})",
        ),
    ),
    handler=cmd_fetch_published,
)

register = registrar(FETCH_PUBLISHED)

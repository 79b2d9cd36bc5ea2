"""The published response files of Costa & Vicente (2026), pinned by commit and sha256.

:func:`fetch_published` downloads them into the user cache (``persona-collapse
fetch-published``); the test suite reads them from there when the reference
folder ``../shared/reference`` is not beside the project.
"""

from ._fetch import (
    URL_ENV,
    PublishedFile,
    PublishedSet,
    default_destination,
    fetch_published,
    published_set,
)

__all__ = [
    "URL_ENV",
    "PublishedFile",
    "PublishedSet",
    "default_destination",
    "fetch_published",
    "published_set",
]

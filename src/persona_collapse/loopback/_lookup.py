"""Finding a simulated object (batch, file, job) by its id, or answering 404 as the API would."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from ._chat import ApiError

T = TypeVar("T")


def found(table: Mapping[str, T], key: str, message: str, *, param: str | None = None) -> T:
    """``table[key]``; absent: :class:`ApiError` 404 ``not_found`` with the provider's ``message``
    (and the request parameter ``param`` it names, if any)."""
    value = table.get(key)
    if value is None:
        raise ApiError(404, message, "not_found", param=param)
    return value

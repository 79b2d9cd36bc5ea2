"""Command-line defaults read from the option dataclasses, so each default is declared once."""

from __future__ import annotations

import dataclasses
from typing import Any


def field_default(cls: type[Any], name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (a factory's value when it has one).

    Raises ValueError for an unknown field or a field without a default.
    """
    for item in dataclasses.fields(cls):
        if item.name != name:
            continue
        if item.default is not dataclasses.MISSING:
            return item.default
        if item.default_factory is not dataclasses.MISSING:
            return item.default_factory()
        raise ValueError(f"{cls.__name__}.{name} has no default")
    raise ValueError(f"{cls.__name__} has no field {name!r}")

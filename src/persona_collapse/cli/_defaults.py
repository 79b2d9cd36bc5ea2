"""Command-line defaults read from the option dataclasses, so each default is declared once."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

_T = TypeVar("_T")


def _default(item: dataclasses.Field[Any]) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return dataclasses.MISSING


def field_default(cls: type[Any], name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (a factory's value when it has one).

    A name that is no field of ``cls`` is looked up in the default of each field
    holding an option dataclass (``RunOptions.protocol``, a ``ProtocolSettings``:
    ``--temperature``'s default is ``ProtocolSettings.temperature``'s).
    Raises ValueError for an unknown field or a field without a default.
    """
    fields = dataclasses.fields(cls)
    for item in fields:
        if item.name != name:
            continue
        value = _default(item)
        if value is dataclasses.MISSING:
            raise ValueError(f"{cls.__name__}.{name} has no default")
        return value
    for item in fields:
        nested = _default(item)
        nested_names = (
            {f.name for f in dataclasses.fields(nested)}
            if dataclasses.is_dataclass(nested) and not isinstance(nested, type)
            else set()
        )
        if name in nested_names:
            return field_default(type(nested), name)
    raise ValueError(f"{cls.__name__} has no field {name!r}")


def from_args(cls: type[_T], args: argparse.Namespace, **overrides: Any) -> _T:
    """``cls(...)`` (a dataclass) with each field that is also an option's dest taken from ``args``.

    ``overrides`` give the other fields (an option named otherwise, a converted
    value); fields that are neither keep their defaults.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return cls(**{**values, **overrides})

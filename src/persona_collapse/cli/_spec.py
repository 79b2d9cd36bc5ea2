"""Commands declared as data: a :class:`Command` names its options, one function adds them.

A command module holds a table of :class:`Option` (and :class:`Group`) entries
instead of a chain of ``add_argument`` calls; :func:`declare` turns each
:class:`Command` into its parser (description, examples, options, handler).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._defaults import field_default
from ._help import examples

__all__ = [
    "Command",
    "Group",
    "Option",
    "add_options",
    "declare",
    "defaults_from",
    "registrar",
]


@dataclass(frozen=True, init=False)
class Option:
    """One ``add_argument(*flags, **settings)`` call as data (a positional: its name as flag)."""

    flags: tuple[str, ...]
    settings: Mapping[str, Any]

    def __init__(self, *flags: str, **settings: Any) -> None:
        object.__setattr__(self, "flags", flags)
        object.__setattr__(self, "settings", settings)

    def replace(self, **settings: Any) -> Option:
        """This option with ``settings`` overriding its keywords (e.g. another ``help``)."""
        return Option(*self.flags, **{**self.settings, **settings})


def defaults_from(options: type) -> Callable[..., Option]:
    """An :class:`Option` maker whose options default to the fields of the dataclass ``options``.

    The field is the one named like the option's dest (``--max-length``:
    ``max_length``), or ``field=NAME``; see :func:`~._defaults.field_default`.
    """

    def make(*flags: str, field: str | None = None, **settings: Any) -> Option:
        name = field or settings.get("dest") or flags[-1].lstrip("-").replace("-", "_")
        return Option(*flags, default=field_default(options, name), **settings)

    return make


@dataclass(frozen=True)
class Group:
    """Options shown under their own heading ``title`` in ``--help``."""

    title: str
    options: tuple[Option, ...]


Entry = Option | Group


def add_options(
    p: argparse.ArgumentParser | argparse._ArgumentGroup, entries: Iterable[Entry]
) -> None:
    """Add ``entries`` to ``p`` in order (a :class:`Group` as an argument group)."""
    for entry in entries:
        if isinstance(entry, Group):
            assert isinstance(p, argparse.ArgumentParser)
            add_options(p.add_argument_group(entry.title), entry.options)
        else:
            p.add_argument(*entry.flags, **entry.settings)


@dataclass(frozen=True)
class Command:
    """A command: its name, ``--help`` text, examples (command lines without the program
    name), options (in ``--help`` order) and the handler that runs it (returns the exit status)."""

    name: str
    description: str
    examples: tuple[str, ...]
    options: Sequence[Entry]
    handler: Callable[[argparse.Namespace], int]


def declare(sub: argparse._SubParsersAction[argparse.ArgumentParser], command: Command) -> None:
    """Add ``command``'s parser to the command parsers ``sub``."""
    p = sub.add_parser(
        command.name,
        description=command.description,
        epilog=examples(*command.examples),
    )
    add_options(p, command.options)
    p.set_defaults(handler=command.handler)


def registrar(
    *commands: Command,
) -> Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]:
    """A module's ``register(sub)``: declares ``commands`` in order."""

    def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        for command in commands:
            declare(sub, command)

    return register

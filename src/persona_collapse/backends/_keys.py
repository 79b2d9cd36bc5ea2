"""The one API-key lookup: a key comes from an environment variable named on the command line.

Keys are never options themselves (they would land in shell histories and
process listings); ``--api-key-env VAR`` names the variable instead, and
without it each backend family reads its own default (``OPENAI_API_KEY``, ...).
"""

from __future__ import annotations

import os
from typing import overload

from ..errors import ConfigError


@overload
def api_key_from_env(name: str, *, option: str) -> str: ...


@overload
def api_key_from_env(name: None, *, option: str) -> None: ...


def api_key_from_env(name: str | None, *, option: str) -> str | None:
    """The key held by environment variable ``name`` (blanks stripped); None when ``name`` is None.

    ``option`` is the command-line option that named the variable (e.g.
    ``--judge-api-key-env``), quoted in the error. Raises :class:`ConfigError`
    when the name is blank or the variable is unset or empty.
    """
    if name is None:
        return None
    var = name.strip()
    if not var:
        raise ConfigError(f"{option} needs the name of an environment variable")
    value = os.environ.get(var, "").strip()
    if not value:
        raise ConfigError(
            f"environment variable {var} (from {option}) is not set; export {var}=YOUR_KEY first"
        )
    return value

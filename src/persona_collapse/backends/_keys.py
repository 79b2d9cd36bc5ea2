"""The one API-key lookup: a key comes from an environment variable named on the command line.

Keys are never options themselves (they would land in shell histories and
process listings); ``--api-key-env VAR`` names the variable instead, and
without it each backend family reads its own default (``OPENAI_API_KEY``, ...),
and only for requests to that provider's own host (:func:`choose_key`): a key
never travels to a ``--base-url`` the user did not name it for.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import overload
from urllib.parse import urlsplit

from ..errors import ConfigError
from ._decisions import host_of, is_provider_host


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


@dataclass(frozen=True)
class KeyChoice:
    """Which key a request to one URL carries.

    ``key`` is None when no key may go there (the backend then sends a
    placeholder that is no secret); ``env`` is the environment variable the key
    comes from, named in messages (None when it came from ``--api-key-env`` or
    there is none); ``warning`` is a one-line warning for stderr, or None.
    """

    key: str | None
    env: str | None
    warning: str | None = None


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = host_of(url)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_warning(url: str) -> str | None:
    """The warning for a key sent to ``url``: plain http to a host other than this machine.

    Such a key crosses the network readable by anyone on the way; it is still
    allowed (a server on a private network), but said. None when it is fine.
    """
    if urlsplit(url).scheme != "http" or is_loopback_url(url):
        return None
    return (
        f"persona-collapse: warning: the API key goes over plain http to {host_of(url)}; "
        "use https:// unless this network is trusted"
    )


def choose_key(
    url: str, *, named_key: str | None, official: Mapping[str, str], who: str
) -> KeyChoice:
    """The key a request to ``url`` may carry: the rule of where keys go.

    * a key named on the command line (``--api-key-env``, passed as
      ``named_key``) goes wherever the user sends it;
    * otherwise a provider's default variable (``official``: official host ->
      variable, e.g. ``api.openai.com -> OPENAI_API_KEY``) is read only for a
      URL on exactly that host, so ``OPENAI_API_KEY`` never reaches a custom
      ``--base-url``;
    * any other URL gets no key (local servers need none), except that a
      hosted provider's host without its key is refused (``who`` names the
      model family in that message).

    Raises :class:`ConfigError` when a hosted provider's key is missing.
    """
    warning = plain_http_warning(url)
    if named_key is not None and named_key.strip():
        return KeyChoice(named_key.strip(), None, warning)
    env = official.get(host_of(url))
    if env is not None:
        value = os.environ.get(env, "").strip()
        if value:
            return KeyChoice(value, env, warning)
        raise ConfigError(
            f"{who}/ models need an API key: set {env} "
            "(or name another variable with --api-key-env)"
        )
    if is_provider_host(url):
        raise ConfigError(
            f"{who}/ models at {host_of(url)} need an API key: "
            "name its environment variable with --api-key-env"
        )
    return KeyChoice(None, None, None)

"""Errors a user can fix.

Every problem caused by input (a bad file, a wrong schema, an unknown model, a
missing API key) is raised as :class:`UserError`. The command line prints its
message as one line on stderr and exits with status 2; nothing else is shown
unless ``--debug`` is given.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, reported as one line (what is wrong, how to fix it)."""

    exit_status = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self.args[0])


class DataError(UserError):
    """Response data that does not follow the published schema or the scale."""


class ConfigError(UserError):
    """A command-line option, study file or environment setting that cannot be used."""

"""persona-collapse: moral susceptibility and robustness of LLM persona role-play."""

from ._version import __version__
from .errors import ConfigError, DataError, UserError
from .instruments import Instrument, load_instrument

__all__ = ["ConfigError", "DataError", "Instrument", "UserError", "__version__", "load_instrument"]

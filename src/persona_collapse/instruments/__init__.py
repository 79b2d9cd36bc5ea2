"""Questionnaires as data. MFQ-30 (0-5) is the default; BFI-44 (1-5) shows another plugs in."""

from ._instrument import Instrument, Item, Scale, fill_template
from ._lookup import available_instruments, load_instrument

__all__ = [
    "Instrument",
    "Item",
    "Scale",
    "available_instruments",
    "fill_template",
    "load_instrument",
]

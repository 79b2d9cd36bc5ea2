"""Instruments as data. MFQ-30 (0-5) is the default; BFI-44 (1-5) shows another plugs in;
a task instrument (``kind: task``) asks items with letter answers."""

from ._elicitation import ATTEMPT_POLICIES, KINDS, AttemptPolicy, Elicitation, Kind
from ._instrument import Instrument, Item, Scale, fill_template
from ._lookup import available_instruments, load_instrument

__all__ = [
    "ATTEMPT_POLICIES",
    "KINDS",
    "AttemptPolicy",
    "Elicitation",
    "Instrument",
    "Item",
    "Kind",
    "Scale",
    "available_instruments",
    "fill_template",
    "load_instrument",
]

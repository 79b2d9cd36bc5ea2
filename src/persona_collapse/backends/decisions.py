"""How provider failures become retry decisions: the pure, offline-testable part of the backends.

Each SDK exception or HTTP status maps to a typed :data:`RetryDecision`
(:class:`Retry`, :class:`Fatal` or :class:`BadAnswer`); :class:`Where`
carries what a message needs (model, base URL, key variable), never a key.
"""

from ._anthropic import NO_LOGPROBS, decision_for_anthropic_error
from ._decisions import SDKErrors, Where, decision_for_sdk_error, decision_for_status, malformed
from ._openai import decision_for_openai_error
from ._sdk import FIRST_CONTACT_TRIES

__all__ = [
    "FIRST_CONTACT_TRIES",
    "NO_LOGPROBS",
    "SDKErrors",
    "Where",
    "decision_for_anthropic_error",
    "decision_for_openai_error",
    "decision_for_sdk_error",
    "decision_for_status",
    "malformed",
]

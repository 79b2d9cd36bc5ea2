"""The elicitation protocol: exact prompts, decoding settings and answer parsing."""

from ._labels import BASE, INSECURE, MISSING_RATING, SECURE, SELF_PERSONA_ID, VARIANT_LABELS
from ._parse import DigitDistribution, digit_distribution, parse_fallback, parse_one_token
from ._render import Message, protocol_hash, slot_messages, slot_prompt
from ._settings import Method, ProtocolSettings

__all__ = [
    "BASE",
    "INSECURE",
    "MISSING_RATING",
    "SECURE",
    "SELF_PERSONA_ID",
    "VARIANT_LABELS",
    "DigitDistribution",
    "Message",
    "Method",
    "ProtocolSettings",
    "digit_distribution",
    "parse_fallback",
    "parse_one_token",
    "protocol_hash",
    "slot_messages",
    "slot_prompt",
]

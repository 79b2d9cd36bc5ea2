"""The elicitation protocol: exact prompts, decoding settings, answer parsing, and the
slot protocol every driver steps (:class:`SlotProtocol`), with the chat values it speaks."""

from ._chat import ChatRequest, ChatResult, Message
from ._labels import BASE, INSECURE, MISSING_RATING, SECURE, SELF_PERSONA_ID, VARIANT_LABELS
from ._parse import DigitDistribution, digit_distribution, parse_fallback, parse_one_token
from ._parsers import (
    PARSERS,
    TASK_PARSERS,
    AnswerParser,
    TaskParser,
    answer_parser,
    normalise_number,
    parse_choice,
    parse_number,
    task_parser,
)
from ._render import protocol_hash, slot_messages, slot_prompt
from ._settings import Method, ProtocolSettings
from ._slot import Slot, request_seed
from ._slot_protocol import Ask, SlotAnswer, SlotProtocol, SlotState
from ._tokens import (
    CHARS_PER_TOKEN,
    MESSAGE_OVERHEAD_TOKENS,
    estimate_request_tokens,
    estimate_tokens,
)

__all__ = [
    "BASE",
    "CHARS_PER_TOKEN",
    "INSECURE",
    "MESSAGE_OVERHEAD_TOKENS",
    "MISSING_RATING",
    "PARSERS",
    "SECURE",
    "SELF_PERSONA_ID",
    "TASK_PARSERS",
    "VARIANT_LABELS",
    "AnswerParser",
    "Ask",
    "ChatRequest",
    "ChatResult",
    "DigitDistribution",
    "Message",
    "Method",
    "ProtocolSettings",
    "Slot",
    "SlotAnswer",
    "SlotProtocol",
    "SlotState",
    "TaskParser",
    "answer_parser",
    "digit_distribution",
    "estimate_request_tokens",
    "estimate_tokens",
    "normalise_number",
    "parse_choice",
    "parse_fallback",
    "parse_number",
    "parse_one_token",
    "protocol_hash",
    "request_seed",
    "slot_messages",
    "slot_prompt",
    "task_parser",
]

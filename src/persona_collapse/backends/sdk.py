"""The HTTP clients over the official SDKs, for callers that build one directly.

Most code names a model instead (:func:`persona_collapse.backends.create_backend`).
"""

from ._anthropic import AnthropicBackend
from ._openai import OpenAIBackend
from ._sdk import SDKBackend

__all__ = ["AnthropicBackend", "OpenAIBackend", "SDKBackend"]

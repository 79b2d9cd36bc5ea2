"""The HTTP clients over the official SDKs, for callers that build one directly.

Most code names a model instead (:func:`persona_collapse.backends.create_backend`).
``OpenAIBatchAPI`` and ``AnthropicBatchAPI`` are the batch capabilities those
clients offer as ``backend.batch``.
"""

from ._anthropic import AnthropicBackend
from ._anthropic_batch import AnthropicBatchAPI
from ._openai import OpenAIBackend
from ._openai_batch import OpenAIBatchAPI
from ._sdk import SDKBackend

__all__ = ["AnthropicBackend", "AnthropicBatchAPI", "OpenAIBackend", "OpenAIBatchAPI", "SDKBackend"]

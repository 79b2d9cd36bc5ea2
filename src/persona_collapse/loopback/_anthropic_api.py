"""The Anthropic Messages wire format: requests, responses and errors.

Endpoints served: ``POST /v1/messages`` and ``GET /v1/models``. The Anthropic
SDK appends ``/v1/messages`` itself, so point it at ``http://HOST:PORT``
(no ``/v1``). Requests need a key, as ``x-api-key`` or ``Authorization: Bearer``
(anthropic 2.x sends the latter), and an ``anthropic-version`` header, as the
real API does. anthropic 2.x has no ``temperature`` argument: send it with
``extra_body={"temperature": T}`` (the server reads it from the body, 0-1).
"""

from __future__ import annotations

import json
from typing import Any

from ._chat import ApiError, Choice, IncomingChat, last_user_prompt
from ._http import HttpResponse

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_response(error: ApiError, request_id: str) -> HttpResponse:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    body = {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(error.status, "api_error"), "message": error.message},
        "request_id": request_id,
    }
    headers = [("request-id", request_id), *error.headers]
    return HttpResponse(error.status, json.dumps(body).encode(), headers)


def parse_request(body: Any, headers: dict[str, str]) -> IncomingChat:
    """An :class:`IncomingChat` from a Messages body (400 errors for bad fields)."""
    if "anthropic-version" not in headers:
        raise ApiError(400, "anthropic-version: header is required")
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model: Field required")
    limit = body.get("max_tokens")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ApiError(400, "max_tokens: Field required (an integer >= 1)")
    temperature = body.get("temperature", 1.0)
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 1
    ):
        raise ApiError(400, "temperature: Input should be a number between 0 and 1")
    return IncomingChat(
        model=model,
        prompt=last_user_prompt(body.get("messages")),
        temperature=float(temperature),
        max_tokens=limit,
    )


def message_response(request: IncomingChat, choice: Choice, message_id: str) -> HttpResponse:
    """A ``message`` object with one text block."""
    body = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": [{"type": "text", "text": choice.text}],
        "stop_reason": "max_tokens" if choice.finish_reason == "length" else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": choice.prompt_tokens,
            "output_tokens": choice.completion_tokens,
        },
    }
    return HttpResponse(200, json.dumps(body).encode(), [("request-id", message_id)])


def models_response(models: list[str]) -> HttpResponse:
    """``GET /v1/models`` in the Anthropic list format."""
    data = [
        {
            "type": "model",
            "id": m,
            "display_name": f"{m} (simulated)",
            "created_at": "2025-01-01T00:00:00Z",
        }
        for m in models
    ]
    body = {
        "data": data,
        "has_more": False,
        "first_id": models[0] if models else None,
        "last_id": models[-1] if models else None,
    }
    return HttpResponse(200, json.dumps(body).encode())


def unknown_model(model: str) -> ApiError:
    return ApiError(404, f"model: {model}", "not_found")


def bad_key(key: str | None) -> ApiError:
    if not key:
        return ApiError(401, "x-api-key header is required", "authentication")
    return ApiError(401, "invalid x-api-key", "authentication")


def api_key(headers: dict[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return None

"""The OpenAI chat-completions wire format: requests, responses and errors.

Endpoints served: ``POST /v1/chat/completions`` and ``GET /v1/models``
(``/v1/models/{id}`` too). Point the SDK at ``http://HOST:PORT/v1``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ._chat import ApiError, Choice, IncomingChat, last_user_prompt
from ._http import HttpResponse

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
}
DEFAULT_MAX_TOKENS = 256


def error_response(error: ApiError, request_id: str) -> HttpResponse:
    """``{"error": {"message", "type", "param", "code"}}`` as the OpenAI API sends it."""
    body = {
        "error": {
            "message": error.message,
            "type": _ERROR_TYPES.get(error.status, "server_error"),
            "param": error.param,
            "code": error.code,
        }
    }
    headers = [("x-request-id", request_id), *error.headers]
    return HttpResponse(error.status, json.dumps(body).encode(), headers)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ApiError(400, f"Invalid '{name}': expected a number in [{low}, {high}].", param=name)
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(
            400, f"Invalid '{name}': expected an integer in [{low}, {high}].", param=name
        )
    return value


def parse_request(body: Any) -> IncomingChat:
    """An :class:`IncomingChat` from a chat-completions body (400 errors for bad fields)."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "you must provide a model parameter", param="model")
    if body.get("stream"):
        raise ApiError(400, "The simulator does not support streaming.", param="stream")
    prompt = last_user_prompt(body.get("messages"))
    limit = _integer(body, "max_completion_tokens", 1, 1_000_000)
    if limit is None:
        limit = _integer(body, "max_tokens", 1, 1_000_000)
    logprobs = bool(body.get("logprobs") or False)
    top = _integer(body, "top_logprobs", 0, 20) or 0
    if top and not logprobs:
        raise ApiError(
            400, "'logprobs' must be set to true when 'top_logprobs' is used.", param="logprobs"
        )
    seed = body.get("seed")
    return IncomingChat(
        model=model,
        prompt=prompt,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        max_tokens=limit or DEFAULT_MAX_TOKENS,
        n=_integer(body, "n", 1, 16) or 1,
        logprobs=logprobs,
        top_logprobs=top,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
    )


def _token_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def _choice(index: int, choice: Choice) -> dict[str, Any]:
    logprobs: dict[str, Any] | None = None
    if choice.top is not None:
        first = choice.text if choice.completion_tokens <= 1 else choice.text.split(" ")[0]
        entry = _token_entry(first, choice.token_logprob or 0.0)
        entry["top_logprobs"] = [_token_entry(t, lp) for t, lp in choice.top]
        logprobs = {"content": [entry], "refusal": None}
    return {
        "index": index,
        "message": {"role": "assistant", "content": choice.text, "refusal": None},
        "logprobs": logprobs,
        "finish_reason": choice.finish_reason,
    }


def completion_response(
    request: IncomingChat, choices: list[Choice], completion_id: str, request_id: str
) -> HttpResponse:
    """A ``chat.completion`` object. ``logprobs.content`` holds the first token only."""
    prompt_tokens = choices[0].prompt_tokens if choices else 0
    completion_tokens = sum(c.completion_tokens for c in choices)
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [_choice(i, c) for i, c in enumerate(choices)],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_simulated",
    }
    return HttpResponse(200, json.dumps(body).encode(), [("x-request-id", request_id)])


def models_response(models: list[str]) -> HttpResponse:
    """``GET /v1/models``: a list object."""
    data = [
        {"id": m, "object": "model", "created": 0, "owned_by": "persona-collapse-simulator"}
        for m in models
    ]
    return HttpResponse(200, json.dumps({"object": "list", "data": data}).encode())


def model_response(model: str) -> HttpResponse:
    """``GET /v1/models/{id}``: one model object."""
    body = {"id": model, "object": "model", "created": 0, "owned_by": "persona-collapse-simulator"}
    return HttpResponse(200, json.dumps(body).encode())


def unknown_model(model: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "not_found",
        code="model_not_found",
    )


def bad_key(key: str | None) -> ApiError:
    if not key:
        return ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "authentication",
        )
    shown = key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 8 else "***"
    return ApiError(
        401, f"Incorrect API key provided: {shown}.", "authentication", code="invalid_api_key"
    )


def api_key(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return None

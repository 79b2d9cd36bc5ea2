"""Routing, authentication, fault injection and bookkeeping of the loopback server."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import numpy as np

from ..simulate import SimulatedRespondent, stable_seed
from . import _anthropic_api as anthropic_api
from . import _batch_api as batch_api
from . import _finetune_api as finetune_api
from . import _openai_api as openai_api
from ._chat import ApiError, Choice, IncomingChat, complete
from ._counters import RecordedRequest, ServerStats
from ._faults import FaultConfig, FaultDraw, draw_faults
from ._http import HttpRequest, HttpResponse

_log = logging.getLogger(__name__)
_OCCURRENCE_LIMIT = 1_000_000
_CHAT = "/v1/chat/completions"
_MESSAGES = "/v1/messages"
_MODELS = "/v1/models"
#: What a gateway in front of an API answers when the API behind it fails, with status 200.
_GATEWAY_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>The upstream server did not answer.</p>"
    b"<hr><address>simulated-gateway</address></body></html>\n"
)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class SimulatorApp:
    """Answers API requests with simulated respondents.

    ``respondents`` maps model names to respondents; with a single respondent
    (``default``) every model name is accepted. Answers are deterministic per
    (model, prompt, n-th time that prompt was asked), or per (seed, model,
    prompt) when the request carries an OpenAI ``seed``.
    """

    def __init__(
        self,
        respondents: dict[str, SimulatedRespondent],
        default: SimulatedRespondent | None,
        faults: FaultConfig,
        stats: ServerStats,
        *,
        keep_requests: bool = False,
    ) -> None:
        self.respondents = respondents
        self.default = default
        self.faults = faults
        self.stats = stats
        self.keep_requests = keep_requests
        self._number = 0
        self._occurrence: dict[int, int] = {}
        self._never: asyncio.Event | None = None
        self.fine_tuning = finetune_api.FineTuneService()
        self.batches = batch_api.BatchService(self.fine_tuning, self.answer_line)

    @property
    def models(self) -> list[str]:
        """Model names listed by ``GET /v1/models``."""
        if self.respondents:
            return list(self.respondents)
        assert self.default is not None
        return [f"sim-{self.default.name}"]

    def _respondent(self, model: str, provider: str) -> SimulatedRespondent:
        found = self.respondents.get(model) or self.default
        if found is None:
            api = anthropic_api if provider == "anthropic" else openai_api
            raise api.unknown_model(model)
        return found

    def _rng(self, respondent: SimulatedRespondent, request: IncomingChat) -> np.random.Generator:
        if request.seed is not None:
            seed = stable_seed(respondent.seed, request.model, request.prompt, "seed", request.seed)
        else:
            key = stable_seed(request.model, request.prompt)
            if len(self._occurrence) >= _OCCURRENCE_LIMIT:
                self._occurrence.clear()
            n = self._occurrence.get(key, 0)
            self._occurrence[key] = n + 1
            seed = stable_seed(respondent.seed, key, n)
        # SFC64 from one 64-bit seed: a third of the set-up cost of default_rng.
        return np.random.Generator(np.random.SFC64(seed))

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """One request in, one response out; never raises."""
        number = self._number
        self._number += 1
        stats = self.stats
        stats.requests += 1
        stats.by_path[request.path] += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        request_id = f"req_sim_{number:08d}"
        try:
            response = await self._dispatch(request, number, request_id)
        except Exception as exc:  # a simulator bug: answer 500 rather than drop the client
            _log.exception("loopback server failed on %s %s", request.method, request.path)
            error = ApiError(500, f"simulator error: {exc!r}", "server")
            response = openai_api.error_response(error, request_id)
        finally:
            stats.in_flight -= 1
        stats.by_status[response.status] += 1
        return response

    async def _dispatch(self, request: HttpRequest, number: int, request_id: str) -> HttpResponse:
        path = request.path.rstrip("/") or "/"
        headers = request.headers
        if path in ("/", "/health"):
            return HttpResponse(200, b'{"status": "ok", "simulated": true}')
        if path.startswith(("/v1/batches", "/v1/messages/batches")):
            return self._batch_request(request, path, request_id)
        if path.startswith(finetune_api.FINETUNE_PREFIXES):
            self._body(request)
            reject = self.faults.reject_key or ""
            return finetune_api.answer(self.fine_tuning, request, path, request_id, reject)
        if path == _CHAT:
            provider = "openai"
        elif path == _MESSAGES:
            provider = "anthropic"
        elif path == _MODELS or path.startswith(_MODELS + "/"):
            anthropic_style = "anthropic-version" in headers or "x-api-key" in headers
            provider = "anthropic" if anthropic_style else "openai"
        else:
            hint = (
                "Unknown path. The OpenAI SDK needs base_url=http://HOST:PORT/v1, "
                "the Anthropic SDK base_url=http://HOST:PORT."
            )
            return openai_api.error_response(ApiError(404, f"{hint} Got {path}"), request_id)
        api = anthropic_api if provider == "anthropic" else openai_api
        body = self._body(request)
        try:
            return await self._api(request, path, provider, body, number, request_id)
        except ApiError as error:
            return api.error_response(error, request_id)

    def _batch_request(self, request: HttpRequest, path: str, request_id: str) -> HttpResponse:
        anthropic = path.startswith("/v1/messages/batches")
        api = anthropic_api if anthropic else openai_api
        self._body(request)
        try:
            key = api.api_key(request.headers)
            if not key or key == self.faults.reject_key:
                raise api.bad_key(key)
            parts = [p for p in path.split("/") if p]
            if anthropic:
                base = f"http://{request.headers.get('host', '127.0.0.1')}"
                return self.batches.anthropic(request, parts[3:], base)
            return self.batches.openai(request, parts[1:])
        except ApiError as error:
            return api.error_response(error, request_id)
        except (ValueError, KeyError, TypeError) as exc:
            return api.error_response(ApiError(400, f"bad batch request: {exc}"), request_id)

    def answer_line(self, provider: str, body: Any) -> tuple[int, Any]:
        """One batch line answered as the same direct request would be: (status, body).

        The server's faults are drawn per line: a 5xx or a broken body becomes
        an error line (status 500), a non-digit token replaces a one-token answer.
        """
        number = self._number
        self._number += 1
        self.stats.by_model["batch-line"] += 1
        api = anthropic_api if provider == "anthropic" else openai_api
        request_id = f"req_sim_{number:08d}"
        draw = draw_faults(self.faults, number)
        try:
            if draw.kind == "server_error" or draw.malformed:
                self.stats.faults["batch_line_error"] += 1
                raise ApiError(500, "The server had an error processing your request.", "server")
            if provider == "anthropic":
                chat = anthropic_api.parse_request(body, {"anthropic-version": "2023-06-01"})
            else:
                chat = openai_api.parse_request(body)
            respondent = self._respondent(chat.model, provider)
            choices = complete(respondent, chat, self._rng(respondent, chat))
            response = self._response(provider, chat, choices, draw, number, request_id)
        except ApiError as error:
            response = api.error_response(error, request_id)
        return response.status, json.loads(response.body)

    def _body(self, request: HttpRequest) -> Any:
        body: Any = None
        if request.body:
            try:
                body = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = None
        if self.keep_requests:
            self.stats.recorded.append(
                RecordedRequest(request.method, request.path, dict(request.headers), body)
            )
        return body

    async def _api(
        self,
        request: HttpRequest,
        path: str,
        provider: str,
        body: Any,
        number: int,
        request_id: str,
    ) -> HttpResponse:
        api = anthropic_api if provider == "anthropic" else openai_api
        key = api.api_key(request.headers)
        faults = self.faults
        if not key or key == faults.reject_key:
            raise api.bad_key(key)
        if faults.latency_s > 0:
            await asyncio.sleep(faults.latency_s)

        if request.method == "GET" and path.startswith(_MODELS):
            if path == _MODELS:
                return api.models_response(self.models)
            model = path[len(_MODELS) + 1 :]
            self._respondent(model, provider)
            return openai_api.model_response(model)
        if request.method != "POST":
            raise ApiError(405, f"Method {request.method} is not allowed on {path}.")
        if request.body and body is None:
            raise ApiError(400, "We could not parse the JSON body of your request.")

        if faults.hold_after is not None and number >= faults.hold_after:
            # No answer until the server stops (it cancels this task then).
            self.stats.held += 1
            if self._never is None:
                self._never = asyncio.Event()
            await self._never.wait()

        draw = draw_faults(faults, number)
        await self._inject(draw, faults)

        if provider == "anthropic":
            chat = anthropic_api.parse_request(body, request.headers)
        else:
            chat = openai_api.parse_request(body)
        self.stats.by_model[chat.model] += 1
        respondent = self._respondent(chat.model, provider)
        # An answer lost to a broken body must not use up the prompt's n-th answer: the
        # next request for it gets what it would have got without the fault.
        rng = (
            np.random.Generator(np.random.SFC64(number))
            if draw.malformed
            else self._rng(respondent, chat)
        )
        choices = complete(respondent, chat, rng)
        if faults.echo_key and chat.max_tokens > 1:
            choices = [
                Choice(
                    f"{c.text} (key: {key})",
                    c.finish_reason,
                    c.prompt_tokens,
                    c.completion_tokens,
                    c.top,
                    c.token_logprob,
                )
                for c in choices
            ]
        response = self._response(provider, chat, choices, draw, number, request_id)
        return self._broken(response, draw, provider, request_id)

    def _response(
        self,
        provider: str,
        chat: IncomingChat,
        choices: list[Choice],
        draw: FaultDraw,
        number: int,
        request_id: str,
    ) -> HttpResponse:
        """The API response for ``choices``, a drawn non-digit token replacing a one-token answer."""
        if draw.non_digit_token is not None and chat.max_tokens == 1:
            self.stats.faults["non_digit"] += 1
            first = choices[0]
            choices[0] = Choice(
                draw.non_digit_token,
                first.finish_reason,
                first.prompt_tokens,
                1,
                first.top,
                first.token_logprob if first.top is None else min(lp for _, lp in first.top),
            )
        if provider == "anthropic":
            return anthropic_api.message_response(chat, choices[0], f"msg_sim_{number:08d}")
        return openai_api.completion_response(
            chat, choices, f"chatcmpl-sim-{number:08d}", request_id
        )

    def _broken(
        self, response: HttpResponse, draw: FaultDraw, provider: str, request_id: str
    ) -> HttpResponse:
        """``response`` with its body broken as ``draw.body`` says (status stays 200)."""
        if draw.body == "cut":
            self.stats.faults["malformed"] += 1
            response.body = response.body[: len(response.body) // 2]
        elif draw.body == "html":
            self.stats.faults["html"] += 1
            response.body = _GATEWAY_PAGE
            response.content_type = "text/html; charset=utf-8"
        elif draw.body == "error":
            self.stats.faults["error_body"] += 1
            api = anthropic_api if provider == "anthropic" else openai_api
            error = ApiError(200, "The server had an error processing your request.", "server")
            response.body = api.error_response(error, request_id).body
        return response

    async def _inject(self, draw: FaultDraw, faults: FaultConfig) -> None:
        if draw.kind == "rate_limit":
            self.stats.faults["rate_limit"] += 1
            wait = faults.retry_after_s
            headers = [
                ("retry-after", _format_seconds(wait)),
                ("retry-after-ms", str(round(wait * 1000))),
            ]
            raise ApiError(
                429,
                "Rate limit reached for requests (simulated). Please try again in "
                f"{_format_seconds(wait)}s.",
                "rate_limit",
                code="rate_limit_exceeded",
                headers=headers,
            )
        if draw.kind == "server_error":
            self.stats.faults["server_error"] += 1
            raise ApiError(
                draw.status, "The server had an error while processing your request.", "server"
            )
        if draw.kind == "timeout":
            self.stats.faults["timeout"] += 1
            await asyncio.sleep(faults.hang_s)

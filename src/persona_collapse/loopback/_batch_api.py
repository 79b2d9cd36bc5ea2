"""Simulated batch APIs: OpenAI's Batch API and Anthropic's Message Batches.

OpenAI (under ``/v1``): ``POST /batches`` (from a ``purpose=batch`` file
uploaded to ``POST /files``), ``GET /batches/{id}``, ``POST
/batches/{id}/cancel``, ``GET /batches``; outputs come back through ``GET
/files/{id}/content`` (shared with the fine-tuning service's files).
Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
``GET /v1/messages/batches/{id}/results`` (JSONL), ``POST .../cancel``.

A batch is ``in_progress`` for :attr:`BatchScript.polls` retrievals, then
ends: its lines are answered then, one by one, by the server's simulated
respondents through the same code as a direct request (the server's
:class:`FaultConfig` applies per line: a drawn 5xx or broken body becomes an
error line, a drawn non-digit token replaces the one-token answer).
:attr:`BatchScript.fail` / :attr:`BatchScript.expire` make the next batches
fail (OpenAI: ``failed``, no output; Anthropic: every line ``errored``) or
expire (no line answered); a negative :attr:`BatchScript.polls` makes them
never end. :attr:`BatchScript.refuse` answers the next create calls with an
error (and creates nothing); :attr:`BatchScript.lines` gives the next batches'
result files faults of their own (:class:`LineFaults`: duplicate and
conflicting lines, lines for attempts never sent, null and cut lines, results
gone with a 404).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from ._chat import ApiError
from ._finetune_api import FineTuneService
from ._http import HttpRequest, HttpResponse
from ._http import json_response as _json
from ._lookup import found

#: Answers one request line: (provider, body) -> (HTTP status, response body).
LineAnswer = Callable[[str, Any], tuple[int, Any]]


@dataclass(frozen=True)
class LineFaults:
    """What goes wrong in the result lines of one ended batch (counts are lines).

    Taken in this order from the batch's answered lines (status 200): the first
    ``duplicate`` come twice, verbatim; the next ``conflict`` come twice, the
    second time with another digit; the next ``null`` come with no result
    (Anthropic ``"result": null``; OpenAI ``"response": null, "error": null``);
    the next ``malformed`` are cut in half. ``foreign``: that many extra lines
    (for the first answered lines) name the next attempt of a sent slot, an
    attempt never sent, with another digit. ``gone``: the results answer 404
    (Anthropic's results URL; OpenAI's output and error files), as past the
    provider's retention.
    """

    duplicate: int = 0
    conflict: int = 0
    null: int = 0
    malformed: int = 0
    foreign: int = 0
    gone: bool = False


@dataclass
class BatchScript:
    """How simulated batches behave. ``fail`` / ``expire``: that many next batches do so.

    ``polls``: retrievals before a batch ends (negative: it never ends);
    ``refuse``: that many next create calls are answered ``refuse_status`` (and
    create nothing); ``poll_errors``: that many next retrievals of a batch are
    answered ``poll_error_status`` (with ``Retry-After: 0`` on a 429) and do not
    count as polls; ``list_errors``: the same for that many next listings of the
    batches; ``lines``: the result-line faults of the next batches, one
    :class:`LineFaults` per batch created (taken in order).
    """

    polls: int = 2
    fail: int = 0
    expire: int = 0
    refuse: int = 0
    refuse_status: int = 400
    poll_errors: int = 0
    poll_error_status: int = 503
    list_errors: int = 0
    lines: list[LineFaults] = field(default_factory=list)


@dataclass
class _Batch:
    id: str
    provider: str
    lines: list[dict[str, Any]]
    created_at: int
    outcome: str  # complete | fail | expire
    polls_left: int
    status: str = "in_progress"
    output_file_id: str | None = None
    error_file_id: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    input_file_id: str = ""
    faults: LineFaults = field(default_factory=LineFaults)


def _query(request: HttpRequest, name: str) -> str | None:
    values = parse_qs(request.query).get(name)
    return values[0] if values else None


def _page(batches: list[_Batch], after: str | None, limit: str | None) -> tuple[list[_Batch], bool]:
    """One page of ``batches`` after the id ``after`` (limit 1-100, default 20)."""
    start = 0
    if after:
        ids = [b.id for b in batches]
        start = ids.index(after) + 1 if after in ids else len(batches)
    n = max(1, min(100, int(limit))) if limit else 20
    return batches[start : start + n], start + n < len(batches)


def _listing(
    batches: list[_Batch], after: str | None, limit: str | None, render: Callable[[_Batch], Any]
) -> dict[str, Any]:
    """One :func:`_page` of ``batches`` as both providers list it: the rendered batches,
    ``has_more`` and the page's first and last ids."""
    page, more = _page(batches, after, limit)
    data = [render(b) for b in page]
    return {
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


class BatchService:
    """Batches of both protocols, kept in memory; ``created`` counts batches created."""

    def __init__(self, files: FineTuneService, answer: LineAnswer) -> None:
        self.files = files
        self.answer = answer
        self.script = BatchScript()
        self.batches: dict[str, _Batch] = {}
        self.created = 0
        self.lines = 0

    def set_script(self, script: BatchScript) -> None:
        self.script = script

    def _refuse_create(self) -> None:
        """Answer this create call with the scripted error (nothing is created)."""
        if self.script.refuse > 0:
            self.script.refuse -= 1
            raise ApiError(self.script.refuse_status, "simulated: the batch was not created")

    def _fail_poll(self, listing: bool = False) -> None:
        """Answer this retrieval (``listing``: of the batch list) with the scripted error,
        if one is left."""
        left = "list_errors" if listing else "poll_errors"
        if getattr(self.script, left) > 0:
            setattr(self.script, left, getattr(self.script, left) - 1)
            status = self.script.poll_error_status
            if status == 429:
                raise ApiError(
                    429, "simulated: slow down", "rate_limit", headers=[("Retry-After", "0")]
                )
            raise ApiError(status, "simulated: the batch service failed", "server")

    def _new(self, provider: str, lines: list[dict[str, Any]]) -> _Batch:
        outcome = "complete"
        if self.script.fail > 0:
            self.script.fail -= 1
            outcome = "fail"
        elif self.script.expire > 0:
            self.script.expire -= 1
            outcome = "expire"
        prefix = "msgbatch_" if provider == "anthropic" else "batch_"
        digest = hashlib.sha256(f"{provider}{self.created}{time.time()}".encode()).hexdigest()
        batch = _Batch(
            prefix + digest[:24], provider, lines, int(time.time()), outcome, self.script.polls
        )
        if self.script.lines:
            batch.faults = self.script.lines.pop(0)
        self.batches[batch.id] = batch
        self.created += 1
        self.lines += len(lines)
        return batch

    def _batch(self, batch_id: str) -> _Batch:
        return found(self.batches, batch_id, f"No batch found with id '{batch_id}'.")

    def _advance(self, batch: _Batch) -> None:
        if batch.status != "in_progress" or batch.polls_left < 0:
            return  # ended, or never ends
        if batch.polls_left > 0:
            batch.polls_left -= 1
            return
        if batch.outcome == "fail":
            batch.status = "failed"
        elif batch.outcome == "expire":
            batch.status = "expired"
        else:
            batch.status = "completed"
        self._finish(batch)

    def _finish(self, batch: _Batch) -> None:
        out: list[dict[str, Any]] = []
        for n, line in enumerate(batch.lines):
            cid = line.get("custom_id")
            body = line.get("params") if batch.provider == "anthropic" else line.get("body")
            if batch.outcome == "complete":
                status, answer = self.answer(batch.provider, body)
            elif batch.outcome == "fail":
                status, answer = 0, "failed"
            else:
                status, answer = 0, "expired"
            out.append({"n": n, "custom_id": cid, "status": status, "body": answer})
        batch.results = _with_faults(out, batch.faults)
        if batch.provider == "openai" and batch.outcome != "fail":
            ok = [r for r in batch.results if r["status"] == 200]
            bad = [r for r in batch.results if r["status"] != 200]
            batch.output_file_id = self._file(batch, "output", ok) if ok else None
            batch.error_file_id = self._file(batch, "errors", bad) if bad else None

    def _file(self, batch: _Batch, what: str, rows: list[dict[str, Any]]) -> str:
        lines = []
        for r in rows:
            if r.get("fault") == "null":
                lines.append(
                    _cut_if(
                        r,
                        json.dumps({"custom_id": r["custom_id"], "response": None, "error": None}),
                    )
                )
                continue
            if r["status"] == 0:
                response = None
                error = {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion window expired.",
                }
            else:
                response = {
                    "status_code": r["status"],
                    "request_id": f"req_{r['n']}",
                    "body": r["body"],
                }
                error = None
            line = {
                "id": f"batch_req_{r['n']}",
                "custom_id": r["custom_id"],
                "response": response,
                "error": error,
            }
            lines.append(_cut_if(r, json.dumps(line)))
        file_id = f"file-{batch.id}-{what}"
        content = ("\n".join(lines) + "\n").encode()
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": f"{what}.jsonl",
            "purpose": "batch_output",
            "status": "processed",
        }
        if not batch.faults.gone:  # gone: the id is named, its content answers 404
            self.files.add_file(record, content)
        return file_id

    # -- OpenAI -----------------------------------------------------------------

    def _openai_dict(self, b: _Batch) -> dict[str, Any]:
        done = sum(1 for r in b.results if r["status"] == 200)
        failed = len(b.results) - done
        return {
            "id": b.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": {
                "object": "list",
                "data": [{"code": "invalid_file", "message": "simulated failure"}],
            }
            if b.status == "failed"
            else None,
            "input_file_id": b.input_file_id,
            "completion_window": "24h",
            "status": b.status,
            "output_file_id": b.output_file_id,
            "error_file_id": b.error_file_id,
            "created_at": b.created_at,
            "request_counts": {"total": len(b.lines), "completed": done, "failed": failed},
            "metadata": b.metadata,
        }

    def openai(self, request: HttpRequest, parts: list[str]) -> HttpResponse:
        method = request.method
        if parts == ["batches"] and method == "POST":
            body = json.loads(request.body or b"{}")
            file_id = body.get("input_file_id")
            if file_id not in self.files.contents:
                raise ApiError(400, f"invalid input_file_id: {file_id}", param="input_file_id")
            if body.get("endpoint") != "/v1/chat/completions":
                raise ApiError(
                    400, "endpoint must be /v1/chat/completions (simulated)", param="endpoint"
                )
            text = self.files.contents[file_id].decode("utf-8")
            lines = [json.loads(t) for t in text.splitlines() if t.strip()]
            self._refuse_create()
            batch = self._new("openai", lines)
            batch.input_file_id = file_id
            batch.metadata = body.get("metadata") or {}
            return _json(200, self._openai_dict(batch))
        if parts == ["batches"] and method == "GET":
            self._fail_poll(listing=True)
            # Newest first, paginated by ``after`` (an id) and ``limit``, as OpenAI's.
            mine = [b for b in reversed(list(self.batches.values())) if b.provider == "openai"]
            after, limit = _query(request, "after"), _query(request, "limit")
            listing = _listing(mine, after, limit, self._openai_dict)
            return _json(200, {"object": "list", **listing})
        if len(parts) == 2 and method == "GET":
            self._fail_poll()
            batch = self._batch(parts[1])
            self._advance(batch)
            return _json(200, self._openai_dict(batch))
        if len(parts) == 3 and parts[2] == "cancel" and method == "POST":
            batch = self._batch(parts[1])
            if batch.status == "in_progress":
                batch.outcome, batch.status = "expire", "cancelled"
                self._finish(batch)
            return _json(200, self._openai_dict(batch))
        raise ApiError(404, f"Unknown batch path {method} /v1/{'/'.join(parts)}.", "not_found")

    # -- Anthropic --------------------------------------------------------------

    def _anthropic_dict(self, b: _Batch, base: str) -> dict[str, Any]:
        ended = b.status != "in_progress"
        counts = {
            "processing": 0 if ended else len(b.lines),
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        }
        for r in b.results:
            if r["status"] == 200:
                counts["succeeded"] += 1
            elif b.outcome == "expire":
                counts["expired"] += 1
            else:
                counts["errored"] += 1
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b.created_at))
        return {
            "id": b.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "ended_at": stamp if ended else None,
            "created_at": stamp,
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(b.created_at + 86400)),
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{base}/v1/messages/batches/{b.id}/results" if ended else None,
        }

    def anthropic(self, request: HttpRequest, parts: list[str], base: str) -> HttpResponse:
        method = request.method
        if not parts and method == "POST":
            body = json.loads(request.body or b"{}")
            requests = body.get("requests")
            if not isinstance(requests, list) or not requests:
                raise ApiError(400, "requests: Field required (a non-empty list)")
            self._refuse_create()
            batch = self._new("anthropic", requests)
            return _json(200, self._anthropic_dict(batch, base))
        if not parts and method == "GET":
            self._fail_poll(listing=True)
            mine = [b for b in reversed(list(self.batches.values())) if b.provider == "anthropic"]
            after, limit = _query(request, "after_id"), _query(request, "limit")
            return _json(200, _listing(mine, after, limit, lambda b: self._anthropic_dict(b, base)))
        if len(parts) == 1 and method == "GET":
            self._fail_poll()
            batch = self._batch(parts[0])
            self._advance(batch)
            return _json(200, self._anthropic_dict(batch, base))
        if len(parts) == 2 and parts[1] == "results" and method == "GET":
            batch = self._batch(parts[0])
            if batch.status == "in_progress":
                raise ApiError(400, f"Batch {batch.id} has not ended.")
            if batch.faults.gone:
                raise ApiError(404, f"Results of batch {batch.id} are no longer available.")
            lines = [_anthropic_line(batch.outcome, r) for r in batch.results]
            return HttpResponse(
                200, ("\n".join(lines) + "\n").encode(), content_type="application/x-jsonl"
            )
        if len(parts) == 2 and parts[1] == "cancel" and method == "POST":
            batch = self._batch(parts[0])
            if batch.status == "in_progress":
                batch.outcome, batch.status = "expire", "canceled"
                self._finish(batch)
            return _json(200, self._anthropic_dict(batch, base))
        raise ApiError(404, f"Unknown message batch path {method}.", "not_found")


def _cut_if(row: dict[str, Any], line: str) -> str:
    """``line`` cut in half when ``row`` is scripted ``malformed``."""
    return line[: len(line) // 2] if row.get("fault") == "cut" else line


def _other_digit(body: Any) -> Any:
    """A copy of answer ``body`` (OpenAI or Anthropic) whose text is another digit."""
    other = copy.deepcopy(body)
    if isinstance(other, dict) and other.get("choices"):
        message = other["choices"][0]["message"]
        message["content"] = "2" if message.get("content") == "1" else "1"
    elif isinstance(other, dict) and other.get("content"):
        block = other["content"][0]
        block["text"] = "2" if block.get("text") == "1" else "1"
    return other


def _next_attempt(custom_id: str) -> str:
    """``custom_id`` naming the next attempt of its slot (``...a0`` -> ``...a1``, nonce kept)."""
    return re.sub(r"a(\d+)((?:_[0-9A-Za-z]+)?)$", lambda m: f"a{int(m[1]) + 1}{m[2]}", custom_id)


def _with_faults(rows: list[dict[str, Any]], faults: LineFaults) -> list[dict[str, Any]]:
    """``rows`` (result lines) with ``faults`` applied (see :class:`LineFaults`)."""
    answered = [r for r in rows if r["status"] == 200]
    out = list(rows)
    start = 0
    for kind, count in (
        ("duplicate", faults.duplicate),
        ("conflict", faults.conflict),
        ("null", faults.null),
        ("cut", faults.malformed),
    ):
        for row in answered[start : start + count]:
            if kind == "duplicate":
                out.append(dict(row))
            elif kind == "conflict":
                out.append({**row, "body": _other_digit(row["body"])})
            else:
                row["fault"] = kind
        start += count
    for row in answered[: faults.foreign]:
        cid = _next_attempt(str(row["custom_id"]))
        out.append({**row, "custom_id": cid, "body": _other_digit(row["body"])})
    return out


def _anthropic_line(outcome: str, row: dict[str, Any]) -> str:
    """One line of a Message Batch's results JSONL (``outcome``: the batch's scripted outcome)."""
    result: dict[str, Any] | None
    if row.get("fault") == "null":
        result = None
    elif row["status"] == 200:
        result = {"type": "succeeded", "message": row["body"]}
    elif outcome == "expire":
        result = {"type": "expired"}
    else:
        body = row["body"]
        error = (
            body
            if isinstance(body, dict)
            else {"type": "error", "error": {"type": "api_error", "message": str(body)}}
        )
        result = {"type": "errored", "error": error}
    return _cut_if(row, json.dumps({"custom_id": row["custom_id"], "result": result}))

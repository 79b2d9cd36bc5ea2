"""The OpenAI files and fine-tuning endpoints, simulated (no model is trained).

Endpoints (under ``/v1``): ``POST /files`` (multipart upload), ``GET
/files/{id}``, ``POST /fine_tuning/jobs``, ``GET /fine_tuning/jobs``, ``GET
/fine_tuning/jobs/{id}``, ``GET /fine_tuning/jobs/{id}/events``, ``POST
/fine_tuning/jobs/{id}/cancel``. Jobs advance one status after
every ``polls_per_status`` reads of ``GET /fine_tuning/jobs/{id}``:
``validating_files -> queued -> running -> succeeded`` (with
``fine_tuned_model``), or ``failed`` with an error, as scripted by
:class:`FineTuneScript`. A training file that is not valid chat JSONL fails
at validation (``invalid_training_file``), as OpenAI's does; a job on an
unknown file is refused with a 400.

Every create request is kept (``FineTuneService.created``) so tests can
check the hyperparameters that arrived.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from ._chat import ApiError
from ._http import HttpRequest, HttpResponse
from ._http import json_response as _json
from ._lookup import found

__all__ = ["FINETUNE_PREFIXES", "FineTuneScript", "FineTuneService", "answer"]

FINETUNE_PREFIXES = ("/v1/files", "/v1/fine_tuning")
"""Paths this service answers."""


@dataclass
class FineTuneScript:
    """How simulated jobs go.

    ``outcome``: ``succeeded`` or ``failed``; ``error``: the error of a failed
    job (``code``, ``message``); ``polls_per_status``: reads of the job per
    status step; ``steps``: simulated training steps (one event each while
    running); ``org``: the organisation part of ``ft:`` model names.
    """

    outcome: str = "succeeded"
    error: dict[str, Any] = field(
        default_factory=lambda: {
            "code": "server_error",
            "message": "The job failed due to an internal error (simulated).",
            "param": None,
        }
    )
    polls_per_status: int = 1
    steps: int = 3
    org: str = "persona-collapse-sim"


_PROGRESS = ("validating_files", "queued", "running")


@dataclass
class _Job:
    body: dict[str, Any]
    id: str
    model: str
    training_file: str
    hyperparameters: dict[str, Any]
    suffix: str | None
    seed: int
    created_at: int
    script: FineTuneScript
    file_ok: bool
    file_error: str
    status: str = "validating_files"
    reads: int = 0
    fine_tuned_model: str | None = None
    error: dict[str, Any] | None = None
    finished_at: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, message: str, level: str = "info") -> None:
        n = len(self.events)
        self.events.append(
            {
                "id": f"ftevent-{self.id[-8:]}-{n:04d}",
                "object": "fine_tuning.job.event",
                "created_at": self.created_at + n,
                "level": level,
                "message": message,
                "type": "message",
            }
        )

    def advance(self) -> None:
        """One read: the first ``polls_per_status`` reads see the status the job was
        created with; every further ``polls_per_status`` reads move it one step on,
        until a terminal status."""
        self.reads += 1
        if self.status in ("succeeded", "failed", "cancelled"):
            return
        if self.reads <= max(1, self.script.polls_per_status):
            return
        if (self.reads - 1) % max(1, self.script.polls_per_status):
            return
        if self.status == "validating_files":
            if not self.file_ok:
                self._fail(
                    {
                        "code": "invalid_training_file",
                        "message": self.file_error,
                        "param": "training_file",
                    }
                )
                return
            self.status = "queued"
            self.event("Files validated, moving job to queued state")
        elif self.status == "queued":
            self.status = "running"
            self.event(f"Fine-tuning job started ({self.script.steps} steps)")
            for step in range(1, self.script.steps + 1):
                self.event(f"Step {step}/{self.script.steps}: training loss={1.0 / step:.4f}")
        elif self.status == "running":
            if self.script.outcome == "succeeded":
                self.status = "succeeded"
                self.finished_at = self.created_at + 60
                suffix = f":{self.suffix}" if self.suffix else ""
                self.fine_tuned_model = f"ft:{self.model}:{self.script.org}{suffix}:{self.id[-8:]}"
                self.event(f"New fine-tuned model created: {self.fine_tuned_model}")
                self.event("The job has successfully completed")
            else:
                self._fail(self.script.error)

    def _fail(self, error: dict[str, Any]) -> None:
        self.status = "failed"
        self.error = dict(error)
        self.finished_at = self.created_at + 30
        self.event(str(error.get("message", "The job failed")), "error")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": self.created_at,
            "error": self.error,
            "fine_tuned_model": self.fine_tuned_model,
            "finished_at": self.finished_at,
            "hyperparameters": self.hyperparameters,
            "method": {
                "type": "supervised",
                "supervised": {"hyperparameters": self.hyperparameters},
            },
            "model": self.model,
            "organization_id": f"org-{self.script.org}",
            "result_files": [],
            "seed": self.seed,
            "status": self.status,
            "trained_tokens": 1234 if self.status == "succeeded" else None,
            "training_file": self.training_file,
            "validation_file": None,
            "estimated_finish": None,
            "integrations": [],
            "metadata": None,
        }


def _check_chat_jsonl(content: bytes) -> str:
    """'' if ``content`` is valid chat JSONL, else why not (with the line number)."""
    from ..errors import DataError
    from ..finetune import validate_chat_line

    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return "The training file is not UTF-8 text."
    n = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            validate_chat_line(line, number, "training file")
        except DataError as exc:
            return f"Invalid file format: {exc.message}"
        n += 1
    if n < 1:
        return "The training file holds no examples."
    return ""


def _multipart(request: HttpRequest) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a ``multipart/form-data`` body: name -> (filename, bytes)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise ApiError(400, "Uploads must be multipart/form-data.")
    head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    if not message.is_multipart():
        raise ApiError(400, "Could not parse the multipart body.")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


def _hyperparameters(body: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters from ``method.supervised.hyperparameters`` or legacy ``hyperparameters``."""
    method = body.get("method")
    legacy = body.get("hyperparameters")
    if method is not None and legacy is not None:
        raise ApiError(
            400, "Specify hyperparameters in 'method', not both.", param="hyperparameters"
        )
    if isinstance(method, dict):
        if method.get("type") not in ("supervised", None):
            raise ApiError(
                400, f"Method type {method.get('type')!r} is not simulated.", param="method"
            )
        hyper = (method.get("supervised") or {}).get("hyperparameters") or {}
    else:
        hyper = legacy or {}
    if not isinstance(hyper, dict):
        raise ApiError(400, "'hyperparameters' must be an object.", param="hyperparameters")
    out = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    out.update(hyper)
    return out


class FineTuneService:
    """Simulated files and fine-tuning jobs (state kept in memory, per server)."""

    def __init__(self, script: FineTuneScript | None = None) -> None:
        self.script = script or FineTuneScript()
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, _Job] = {}
        self.created: list[dict[str, Any]] = []

    def set_script(self, script: FineTuneScript) -> None:
        """Use ``script`` for jobs created from now on."""
        self.script = script

    def handle(self, request: HttpRequest, path: str) -> HttpResponse:
        """Answer one request on a :data:`FINETUNE_PREFIXES` path (auth already checked)."""
        parts = [p for p in path.split("/") if p][1:]  # drop "v1"
        method = request.method
        if parts == ["files"] and method == "POST":
            return self._upload(request)
        if parts == ["files"] and method == "GET":
            return _json(200, {"object": "list", "data": list(self.files.values())})
        if len(parts) == 2 and parts[0] == "files" and method == "GET":
            return _json(200, self._file(parts[1]))
        if len(parts) == 3 and parts[0] == "files" and parts[2] == "content" and method == "GET":
            self._file(parts[1])
            return HttpResponse(200, self.contents[parts[1]], content_type="application/jsonl")
        if parts[:2] == ["fine_tuning", "jobs"]:
            rest = parts[2:]
            if not rest and method == "POST":
                return self._create(request)
            if not rest and method == "GET":
                data = [j.as_dict() for j in reversed(self.jobs.values())]
                return _json(200, {"object": "list", "data": data, "has_more": False})
            if len(rest) == 1 and method == "GET":
                job = self._job(rest[0])
                job.advance()
                return _json(200, job.as_dict())
            if len(rest) == 2 and rest[1] == "events" and method == "GET":
                job = self._job(rest[0])
                data = list(reversed(job.events))  # newest first, as OpenAI sends them
                return _json(200, {"object": "list", "data": data, "has_more": False})
            if len(rest) == 2 and rest[1] == "cancel" and method == "POST":
                job = self._job(rest[0])
                if job.status not in ("succeeded", "failed", "cancelled"):
                    job.status = "cancelled"
                    job.event("Job cancelled")
                return _json(200, job.as_dict())
        raise ApiError(404, f"Unknown fine-tuning path {method} {path}.", "not_found")

    def _file(self, file_id: str) -> dict[str, Any]:
        return found(self.files, file_id, f"No such File object: {file_id}", param="id")

    def _job(self, job_id: str) -> _Job:
        return found(self.jobs, job_id, f"Could not find fine-tune job: {job_id}")

    def _upload(self, request: HttpRequest) -> HttpResponse:
        fields = _multipart(request)
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace").strip()
        if "file" not in fields:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        if purpose not in ("fine-tune", "batch"):
            raise ApiError(
                400,
                f"Invalid purpose {purpose!r} (simulated: fine-tune and batch).",
                param="purpose",
            )
        filename, content = fields["file"]
        file_id = "file-" + hashlib.sha256(content + str(len(self.files)).encode()).hexdigest()[:24]
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename or "upload.jsonl",
            "purpose": purpose,
            "status": "processed",
        }
        self.add_file(record, content)
        return _json(200, record)

    def add_file(self, record: dict[str, Any], content: bytes) -> None:
        """Keep a file (an upload, or a batch's output) under ``record["id"]``."""
        self.files[record["id"]] = record
        self.contents[record["id"]] = content

    def _create(self, request: HttpRequest) -> HttpResponse:
        try:
            body = json.loads(request.body or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        self.created.append(body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "Missing required parameter: 'model'.", param="model")
        file_id = body.get("training_file")
        if not isinstance(file_id, str) or file_id not in self.files:
            raise ApiError(
                400, f"invalid training_file: {file_id}", param="training_file", code="invalid_file"
            )
        hyper = _hyperparameters(body)
        problem = _check_chat_jsonl(self.contents[file_id])
        seed = body.get("seed")
        job_id = "ftjob-" + hashlib.sha256(f"{file_id}{len(self.jobs)}".encode()).hexdigest()[:24]
        job = _Job(
            body=body,
            id=job_id,
            model=model,
            training_file=file_id,
            hyperparameters=hyper,
            suffix=body.get("suffix"),
            seed=seed if isinstance(seed, int) else 42,
            created_at=int(time.time()),
            script=self.script,
            file_ok=not problem,
            file_error=problem,
        )
        job.event(f"Created fine-tuning job: {job_id}")
        job.event(f"Validating training file: {file_id}")
        self.jobs[job_id] = job
        return _json(200, job.as_dict())


def answer(
    service: FineTuneService, request: HttpRequest, path: str, request_id: str, reject_key: str
) -> HttpResponse:
    """One fine-tuning request: OpenAI bearer auth, then :meth:`FineTuneService.handle`.

    Errors come back in the OpenAI error format (``openai_api.error_response``).
    """
    from . import _openai_api as openai_api

    key = openai_api.api_key(request.headers)
    try:
        if not key or key == reject_key:
            raise openai_api.bad_key(key)
        return service.handle(request, path)
    except ApiError as error:
        return openai_api.error_response(error, request_id)

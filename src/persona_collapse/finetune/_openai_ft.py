"""Fine-tuning through the OpenAI fine-tuning API with the official ``openai`` SDK.

Flow: upload the chat JSONL (``purpose="fine-tune"``), create a supervised
job with the published recipe (1 epoch, batch size 4, learning-rate
multiplier 2, sent as ``method.supervised.hyperparameters``), then poll the
job until it succeeds (its ``fine_tuned_model`` is the new model) or fails.
Polling prints status changes and the job's new events (e.g. training
steps) through a callback, and can be resumed later from the job id.

Failures end with one :class:`FinetuneFailed` line (exit status 2): a job
that failed or was cancelled (with OpenAI's error message and code), a file
or job the API refused (validation errors), a rejected key, an unreachable
server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import FAMILIES, PLACEHOLDER_KEY, api_key_from_env, key_for
from ..errors import ConfigError, UserError
from ._recipe import OPENAI_RECIPE, Recipe

__all__ = [
    "TERMINAL_STATUSES",
    "FinetuneFailed",
    "JobStatus",
    "OpenAIFineTuner",
    "openai_method",
]

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")


class FinetuneFailed(UserError):
    """A fine-tuning job or request the provider refused or that failed (one line, exit 2)."""


@dataclass(frozen=True)
class JobStatus:
    """A job as last seen: id, status, base model, resulting model (when succeeded), error."""

    job_id: str
    status: str
    base_model: str
    fine_tuned_model: str | None = None
    error: str | None = None
    trained_tokens: int | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES


def openai_method(recipe: Recipe) -> dict[str, Any]:
    """The ``method`` body of a supervised job with ``recipe``'s hyperparameters."""
    return {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {
                "n_epochs": recipe.epochs,
                "batch_size": recipe.batch_size,
                "learning_rate_multiplier": recipe.lr_multiplier,
            }
        },
    }


def _status(job: Any) -> JobStatus:
    error = getattr(job, "error", None)
    message = None
    if error is not None and (getattr(error, "message", None) or getattr(error, "code", None)):
        code = getattr(error, "code", None)
        message = str(getattr(error, "message", "") or "").strip() or "no message"
        if code:
            message += f" ({code})"
    return JobStatus(
        job_id=str(job.id),
        status=str(job.status),
        base_model=str(getattr(job, "model", "") or ""),
        fine_tuned_model=getattr(job, "fine_tuned_model", None) or None,
        error=message,
        trained_tokens=getattr(job, "trained_tokens", None),
    )


class OpenAIFineTuner:
    """Talks to an OpenAI-compatible fine-tuning API.

    Args:
        base_url: API root (default OpenAI's); a loopback server in tests.
        api_key: a key the user named (``--api-key-env``); it goes to any URL.
            Without it ``OPENAI_API_KEY`` is read for OpenAI's own host only
            (missing: a one-line ConfigError before any request); a custom
            ``base_url`` gets no key (the rule of ``backends.key_for``).
        key_env: environment variable naming such a key instead of ``api_key``.
        timeout_s: per-request timeout in seconds.
        client: a ready ``openai.OpenAI`` client (overrides the above).
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        key_env: str | None = None,
        timeout_s: float = 120.0,
        client: Any = None,
    ) -> None:
        if client is None:
            import openai

            named = api_key if api_key is not None else api_key_from_env(key_env, option="key_env")
            url = base_url or FAMILIES["openai"].base_url or ""
            key = key_for("openai", url, named).key or PLACEHOLDER_KEY
            client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=3)
        self.client = client
        self.base_url = str(getattr(client, "base_url", base_url or ""))

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import openai

        try:
            return fn()
        except openai.AuthenticationError:
            raise ConfigError(
                f"OpenAI rejected the API key while trying to {what}; check OPENAI_API_KEY"
            ) from None
        except openai.APIConnectionError as exc:
            raise ConfigError(
                f"cannot reach {self.base_url} to {what} ({type(exc).__name__}); "
                "check the network or --base-url"
            ) from None
        except openai.APIStatusError as exc:
            detail = _error_message(exc)
            raise FinetuneFailed(
                f"OpenAI refused to {what} (HTTP {exc.status_code}): {detail}"
            ) from None

    def upload(self, path: Path) -> str:
        """Upload a training file (purpose fine-tune); returns its file id."""
        with Path(path).open("rb") as handle:
            uploaded = self._call(
                f"upload {Path(path).name}",
                lambda: self.client.files.create(file=handle, purpose="fine-tune"),
            )
        return str(uploaded.id)

    def create(
        self,
        base_model: str,
        training_file: str,
        *,
        recipe: Recipe = OPENAI_RECIPE,
        suffix: str | None = None,
        seed: int | None = None,
    ) -> JobStatus:
        """Create a supervised fine-tuning job with ``recipe``; returns its first status."""
        options: dict[str, Any] = {"method": openai_method(recipe)}
        if suffix:
            options["suffix"] = suffix
        if seed is not None:
            options["seed"] = seed
        job = self._call(
            f"create a fine-tuning job of {base_model}",
            lambda: self.client.fine_tuning.jobs.create(
                model=base_model, training_file=training_file, **options
            ),
        )
        return _status(job)

    def status(self, job_id: str) -> JobStatus:
        """The job's current status."""
        return _status(
            self._call(
                f"read fine-tuning job {job_id}",
                lambda: self.client.fine_tuning.jobs.retrieve(job_id),
            )
        )

    def new_events(self, job_id: str, seen: set[str]) -> list[str]:
        """Messages of the job's events not in ``seen`` (ids added to it), oldest first."""
        page = self._call(
            f"read the events of job {job_id}",
            lambda: self.client.fine_tuning.jobs.list_events(job_id, limit=50),
        )
        fresh = [e for e in getattr(page, "data", []) if str(e.id) not in seen]
        fresh.sort(key=lambda e: (getattr(e, "created_at", 0), str(e.id)))
        for event in fresh:
            seen.add(str(event.id))
        return [str(e.message) for e in fresh]

    def wait(
        self,
        job_id: str,
        *,
        poll_s: float = 30.0,
        max_wait_s: float | None = None,
        on_progress: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> JobStatus:
        """Poll until the job ends; returns a succeeded job, else raises FinetuneFailed.

        ``on_progress`` receives one line per status change and per new event.
        ``max_wait_s``: give up polling (the job keeps running) after that long,
        raising a ConfigError that says how to resume.
        """
        report = on_progress or (lambda _line: None)
        seen: set[str] = set()
        last_status = ""
        started = time.monotonic()
        while True:
            job = self.status(job_id)
            for message in self.new_events(job_id, seen):
                report(f"{job_id}: {message}")
            if job.status != last_status:
                report(f"{job_id}: {job.status}")
                last_status = job.status
            if job.done:
                break
            if max_wait_s is not None and time.monotonic() - started > max_wait_s:
                raise ConfigError(
                    f"job {job_id} is still {job.status} after {max_wait_s:g} s; "
                    f"resume with: persona-collapse finetune-status {job_id}"
                )
            sleep(poll_s)
        if job.status != "succeeded":
            why = job.error or "no error message"
            raise FinetuneFailed(f"fine-tuning job {job_id} {job.status}: {why}")
        if not job.fine_tuned_model:
            raise FinetuneFailed(f"fine-tuning job {job_id} succeeded but names no model")
        return job


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return " ".join(str(inner["message"]).split())
    text = str(getattr(exc, "message", "") or exc)
    return " ".join(text.split())[:300]

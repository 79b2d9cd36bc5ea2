"""What ``persona-collapse run`` accepts: :class:`RunOptions` and the checks of its values.

The protocol values (method, temperature, attempts, top-logprobs) live in a
:class:`~persona_collapse.protocol.ProtocolSettings`, which declares their
defaults and checks their ranges; this module checks the rest, then asks the
executor the options choose (:func:`refuse_impossible`) whether it can serve
them, so an impossible combination fails before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..backends import FAMILIES, host_of
from ..errors import ConfigError
from ..instruments import task_names
from ..personas import PERSONAHUB_COSTA
from ..protocol import ProtocolSettings
from ..store import DEFAULT_STORE
from ._executors import refuse_impossible
from ._policy import DEFAULT_MAX_RETRY_AFTER_S

MAX_SLOTS = 10_000_000
"""Most slots (personas x items x repetitions) one run plans: about 2 GB of plan in memory."""

PROTOCOL_KEYWORDS = ("method", "temperature", "max_attempts", "top_logprobs")
"""Keywords of :meth:`RunOptions.build` that set fields of its ``protocol`` (the ``run``
options of the protocol)."""

OPENAI_MAX_TOP_LOGPROBS = 20
"""Most ``--top-logprobs`` the official OpenAI API accepts."""


def official_openai(model: str, base_url: str | None) -> bool:
    """Whether ``model`` with ``base_url`` goes to the official OpenAI API (``openai/`` at
    api.openai.com, the family's default host)."""
    if model.partition("/")[0].strip().lower() != "openai":
        return False
    official = host_of(FAMILIES["openai"].base_url or "")
    return (host_of(base_url) if base_url else official) == official


@dataclass(frozen=True)
class RunOptions:
    """Everything ``persona-collapse run`` accepts (defaults: the published protocol).

    ``protocol``: how each slot is asked (method, temperature, attempts,
    top-logprobs; its defaults are the published values). ``api_key_env``
    names the environment variable holding the key (default: the family's,
    e.g. ``OPENAI_API_KEY``); the key itself is never an option. ``variant``
    defaults to the simulated preset for ``sim/`` models and to ``base``
    otherwise. Values are checked on construction (:class:`ConfigError` naming
    the command-line option), before any file is touched: seeds are whole
    numbers >= 0, a run plans at most :data:`MAX_SLOTS` slots, at most
    :data:`OPENAI_MAX_TOP_LOGPROBS` alternatives at the official OpenAI API,
    and the chosen executor refuses options it cannot serve or would ignore.
    """

    model: str
    variant: str | None = None
    family: str = ""
    self_mode: bool = False
    personas: str = PERSONAHUB_COSTA
    persona_field: str | None = None
    n_personas: int | None = None
    """First N personas; None: the published 100 of personahub-costa, every persona of a file."""
    reps: int = 10
    protocol: ProtocolSettings = field(default_factory=ProtocolSettings)
    concurrency: int | None = None
    """Requests in flight; None: the backend's preferred value (hf 32, vllm 256), else 8."""
    base_url: str | None = None
    api_key_env: str | None = None
    store: str = DEFAULT_STORE
    run_id: str | None = None
    max_cost: float | None = None
    timeout_s: float = 60.0
    max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S
    """Longest Retry-After waited out (seconds); a longer one stops the run, resumable."""
    instrument: str = "mfq30"
    """Instrument name or JSON file; ``mmlu``/``gsm8k``: a capability-control task (self mode)."""
    items: str | None = None
    """A task's item-set file (``--items``) in place of the pinned set (with ``mmlu``/``gsm8k``)."""
    seed: int = 0
    quiet: bool = False
    batch: bool = False
    """Ask through the provider's batch API (openai/, anthropic/) at the batch price."""
    batch_poll_s: float | None = None
    """Seconds between two polls of a batch in flight (with ``batch`` only); None: the
    default :data:`DEFAULT_BATCH_POLL_S` (30 s) at use. Any value without ``batch`` is
    refused, the default's included."""
    batch_timeout_s: float | None = None
    """Seconds one session waits for its batches to end (with ``batch`` only); None: the
    default :data:`DEFAULT_BATCH_TIMEOUT_S` (the providers' 24 h window) at use. Then the
    run stops, resumable, and a resume polls them again. Any value without ``batch`` is
    refused, the default's included."""
    ray: str | None = None
    """Ray cluster address (``local``: start Ray here); None: collect in this process."""
    workers: int = 1
    """Ray workers (model replicas) in the actor pool (with ``ray``)."""
    gpus_per_worker: float = 0.0
    """GPUs each Ray worker reserves (0: CPU; fractions share a GPU)."""

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def build(cls, model: str, **fields: Any) -> RunOptions:
        """:class:`RunOptions` from keywords, the protocol's flat (``method=``, ``temperature=``).

        :data:`PROTOCOL_KEYWORDS` set the fields of ``protocol`` (the one given,
        else the published :class:`ProtocolSettings`); every other keyword is a
        field of :class:`RunOptions`.
        """
        changes = {k: fields.pop(k) for k in PROTOCOL_KEYWORDS if k in fields}
        protocol = fields.pop("protocol", None) or ProtocolSettings()
        return cls(model=model, protocol=dataclasses.replace(protocol, **changes), **fields)

    def validate(self) -> None:
        """Raise :class:`ConfigError` (naming the option) for a value out of range or an
        option combination the chosen executor refuses."""
        if not isinstance(self.protocol, ProtocolSettings):
            raise ConfigError("protocol must be a ProtocolSettings")
        if self.api_key_env is not None and not self.api_key_env.strip():
            raise ConfigError("--api-key-env needs the name of an environment variable")
        self._validate_task()
        self._validate_size()
        if self.seed < 0:
            raise ConfigError(f"--seed must be a whole number >= 0, not {self.seed}")
        top = self.protocol.top_logprobs
        if top > OPENAI_MAX_TOP_LOGPROBS and official_openai(self.model, self.base_url):
            raise ConfigError(
                f"--top-logprobs {top}: the OpenAI API returns at most "
                f"{OPENAI_MAX_TOP_LOGPROBS} alternatives; ask for {OPENAI_MAX_TOP_LOGPROBS} or less"
            )
        self._validate_transport()
        refuse_impossible(self)

    def _validate_task(self) -> None:
        """A task run (``mmlu``, ``gsm8k``) is self mode, sampled, asked once per slot: refuse the
        options it would ignore (persona options, ``--max-attempts``, the logprob method)."""
        task = self.instrument in task_names()
        if not task:
            if self.items is not None:
                raise ConfigError(
                    f"--items gives the items of a task (--instrument {' or '.join(task_names())}),"
                    f" not of {self.instrument}"
                )
            return
        what = f"--instrument {self.instrument}"
        persona_options = {
            "--personas": self.personas != PERSONAHUB_COSTA,
            "--n-personas": self.n_personas is not None,
            "--persona-field": self.persona_field is not None,
        }
        for option, given in persona_options.items():
            if given:
                raise ConfigError(f"{option} does nothing with {what}: a task has no personas")
        if self.protocol.method == "logprobs":
            raise ConfigError(
                f"--method logprobs does not apply to {what}: the control samples its answers "
                "(as published); drop --method"
            )
        if self.protocol.max_attempts != ProtocolSettings().max_attempts:
            raise ConfigError(
                f"--max-attempts does nothing with {what}: a task asks each slot once "
                "(a reply that does not parse is a format failure)"
            )
        object.__setattr__(self, "self_mode", True)

    def _validate_size(self) -> None:
        if self.reps < 1:
            raise ConfigError("--reps must be at least 1")
        if not self.self_mode and self.n_personas is not None and self.n_personas < 1:
            raise ConfigError("--n-personas must be at least 1")
        personas = 1 if self.self_mode or self.n_personas is None else self.n_personas
        if self.reps * personas > MAX_SLOTS:
            what = (
                f"--reps {self.reps}"
                if personas == 1
                else f"--reps {self.reps} x --n-personas {personas}"
            )
            raise ConfigError(
                f"{what} asks over {MAX_SLOTS:,} slots, "
                "more than a run can plan in memory; ask fewer (e.g. --reps 10)"
            )

    def _validate_transport(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if not self.timeout_s > 0:
            raise ConfigError("--timeout must be a positive number of seconds")
        if self.max_cost is not None and not self.max_cost > 0:
            raise ConfigError("--max-cost must be a positive number of US dollars")
        if not (math.isfinite(self.max_retry_after_s) and self.max_retry_after_s > 0):
            raise ConfigError("--max-retry-after must be a positive number of seconds")
        poll = self.batch_poll_s
        if poll is not None and not (math.isfinite(poll) and poll > 0):
            raise ConfigError("--batch-poll must be a positive number of seconds")
        timeout = self.batch_timeout_s
        if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError("--batch-timeout must be a positive number of seconds")
        if self.ray is not None and not self.ray.strip():
            raise ConfigError("--ray needs a cluster address (host:port, ray://host:port) or local")
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if not (math.isfinite(self.gpus_per_worker) and self.gpus_per_worker >= 0):
            raise ConfigError("--gpus-per-worker must be a number >= 0")

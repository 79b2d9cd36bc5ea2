"""The demo-and-test package: a loopback HTTP server with SIMULATED answers.

It speaks the OpenAI and Anthropic APIs on 127.0.0.1 and is not part of the
measuring pipeline (nothing below ``workflows/`` imports it): it serves tests,
benchmarks and the offline demo, which needs a real HTTP server at run time.
Official SDKs are its clients; faults can be injected (latency, 429 with
Retry-After, 5xx, timeouts, non-digit answers, broken 200 bodies: cut JSON,
HTML pages, error objects). Answers come from
:class:`persona_collapse.simulate.SimulatedRespondent`, never from a model.
Run ``python -m persona_collapse.loopback --help`` to serve from a shell.

Also simulated: the OpenAI files and fine-tuning jobs endpoints
(:class:`FineTuneService`, scripted by :class:`FineTuneScript`), and a
scripted model/judge for emergent-misalignment verification
(:class:`ScriptedRespondent`, :class:`JudgeReply`).
"""

from ._batch_api import BatchScript, BatchService, LineFaults
from ._counters import RecordedRequest, ServerStats
from ._faults import BodyFault, FaultConfig, FaultDraw, draw_faults
from ._finetune_api import FineTuneScript, FineTuneService
from ._judge import JudgeReply, ScriptedRespondent
from ._server import LoopbackServer

__all__ = [
    "BatchScript",
    "BatchService",
    "BodyFault",
    "FaultConfig",
    "FaultDraw",
    "FineTuneScript",
    "FineTuneService",
    "JudgeReply",
    "LineFaults",
    "LoopbackServer",
    "RecordedRequest",
    "ScriptedRespondent",
    "ServerStats",
    "draw_faults",
]

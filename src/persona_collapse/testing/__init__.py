"""A loopback HTTP server speaking the OpenAI and Anthropic APIs, with SIMULATED answers.

For tests, benchmarks and the offline demo: real HTTP on 127.0.0.1, official
SDKs as clients, injectable faults (latency, 429 with Retry-After, 5xx,
timeouts, non-digit answers, malformed bodies). Answers come from
:class:`persona_collapse.simulate.SimulatedRespondent`, never from a model.
Run ``python -m persona_collapse.testing --help`` to serve from a shell.

Also simulated: the OpenAI files and fine-tuning jobs endpoints
(:class:`FineTuneService`, scripted by :class:`FineTuneScript`), and a
scripted model/judge for emergent-misalignment verification
(:class:`ScriptedRespondent`, :class:`JudgeReply`).

Also here, though no server: :func:`build_tiny_model`, a tiny random chat
model saved to a folder for tests and benchmarks of the ``hf/`` backend.
"""

from ._faults import FaultConfig, FaultDraw, draw_faults
from ._finetune_api import FineTuneScript, FineTuneService
from ._judge import JudgeReply, ScriptedRespondent
from ._server import LoopbackServer
from ._stats import RecordedRequest, ServerStats
from ._tiny_model import build_tiny_model

__all__ = [
    "FaultConfig",
    "FaultDraw",
    "FineTuneScript",
    "FineTuneService",
    "JudgeReply",
    "LoopbackServer",
    "RecordedRequest",
    "ScriptedRespondent",
    "ServerStats",
    "build_tiny_model",
    "draw_faults",
]

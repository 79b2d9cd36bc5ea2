"""Measuring S and R of a local checkpoint during fine-tuning (``--measure-every``).

A checkpoint folder (a merged model ``hf/`` loads) answers the MFQ-30 as a
small set of personas with the logprob protocol (one request per persona and
item, exact digit distributions from the ``hf/`` backend), collected by the
ordinary runner into a store; S, sigma_bar and R (rating points; R in
1 / rating points) are then estimated as for any run, with a reduced
bootstrap (200 persona draws, 50 repetition draws) to keep it quick, with
the scale usage (top-1 share; saturated when one rating holds most answers).
Runs are named ``step-NNNNNN`` (the base model, measured before training, is
``step-000000``), so ``persona-collapse trajectory STORE`` reads the whole
series from the store with each step from its run id.

A workflow above ``collect``, the analysis and ``finetune``: the fine-tuning
session knows nothing of measurement and only calls the meter it is handed
(``run_finetune(..., on_checkpoint=meter)``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["CheckpointMeter"]


@dataclass(frozen=True)
class CheckpointMeter:
    """Measures checkpoints: ``personas`` spec, how many, the store file and run labels.

    ``family``: recorded on each measurement run (variant ``step-NNNNNN``).
    ``n_personas`` must be at least 2 (S is a spread across personas).
    """

    store: Path
    personas: str = "personahub-costa"
    n_personas: int = 10
    concurrency: int = 8
    seed: int = 0
    family: str = ""
    run_prefix: str = "step"

    def __post_init__(self) -> None:
        if self.n_personas < 2:
            raise ConfigError("--measure-n-personas must be at least 2 (S needs several personas)")
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")

    def __call__(self, folder: Path, step: int) -> dict[str, Any]:
        """S, R (with SEs), sigma_bar, scale usage and the SOURCE of checkpoint ``folder``."""
        return self.measure(f"hf/{Path(folder).resolve()}", step)

    def measure_base(self, model: str) -> dict[str, Any]:
        """The base model (``hf/NAME_OR_FOLDER``) before training, stored as step 0."""
        return self.measure(model, 0)

    def measure(self, model: str, step: int) -> dict[str, Any]:
        """Collect ``model`` as run ``step-NNNNNN`` and measure it (see :meth:`__call__`)."""
        from ..analysis import AnalysisOptions, is_saturated, measure_responses, scale_usage
        from ..collect import RunOptions, run_collection
        from ..protocol import ProtocolSettings
        from ..stats import BootstrapConfig
        from ..store import load_sources

        label = f"{self.run_prefix}-{step:06d}"
        self.store.parent.mkdir(parents=True, exist_ok=True)
        options = RunOptions(
            model=model,
            variant=label,
            family=self.family,
            protocol=ProtocolSettings(method="logprobs"),
            personas=self.personas,
            n_personas=self.n_personas,
            reps=1,
            concurrency=self.concurrency,
            store=str(self.store),
            run_id=label,
            seed=self.seed,
            quiet=True,
        )
        outcome = run_collection(options, stream=io.StringIO())
        (responses,) = load_sources(outcome.source)
        boot = BootstrapConfig(persona_draws=200, repetition_draws=50, seed=self.seed)
        analysis = AnalysisOptions(bootstrap=boot)
        values = measure_responses(responses, analysis).values()
        usage = scale_usage(responses, analysis)
        return {
            "S": values.S,
            "S_se": values.S_se,
            "sigma_bar": values.sigma_bar,
            "R": values.R,
            "R_se": values.R_se,
            "top1_share": usage.top1_share,
            "top1_rating": usage.top1_rating,
            "saturated": is_saturated(usage),
            "source": outcome.source,
        }

"""inspect_ai interop: the registered task ``persona_collapse/mfq_personas``.

Needs the ``inspect`` extra (``pip install 'persona-collapse[inspect]'``).
inspect_ai finds the task through the package's ``inspect_ai`` entry point,
which imports this package::

    inspect eval persona_collapse/mfq_personas --model openai/gpt-4o \\
        -T n_personas=100 -T reps=10

Samples are persona x item, epochs are repetitions; the solver asks as the
published protocol does (one-token answers, up to ``max_attempts``, then one
longer generation read by the fallback parse). The ``.eval`` log it writes is a
SOURCE for ``metrics``, ``compare``, ``export`` and ``report``.
"""

from ._task import (
    RATING_SCORER,
    TASK_NAME,
    answered,
    mfq_personas,
    persona_samples,
    published_protocol,
    rating,
)

__all__ = [
    "RATING_SCORER",
    "TASK_NAME",
    "answered",
    "mfq_personas",
    "persona_samples",
    "published_protocol",
    "rating",
]

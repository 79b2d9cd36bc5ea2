"""Instruments as data. MFQ-30 (0-5) is the default; BFI-44 (1-5) shows another plugs in;
a task instrument (``kind: task``) asks items with a gold answer: the capability
control's MMLU (Hendrycks et al. 2021) and GSM8K (Cobbe et al. 2021) item sets, and the
offline demo's generated ``demo-arithmetic`` (four-choice sums in the MMLU format)."""

from ._control import (
    CHOICE_LETTERS,
    CONTROL_COMMIT,
    CONTROL_SETS,
    CONTROL_URL,
    GSM8K_INSTRUCTION,
    ITEMS_ENV,
    MMLU_INSTRUCTION,
    ControlSet,
    fetch_control_items,
    gsm8k_prompt,
    load_task,
    mmlu_prompt,
    task_instrument,
)
from ._demo_task import DEMO_TASK, demo_task, demo_task_items, demo_task_json
from ._elicitation import ATTEMPT_POLICIES, KINDS, AttemptPolicy, Elicitation, Kind
from ._instrument import Instrument, Item, Scale, fill_template
from ._lookup import available_instruments, elicitation_of, load_instrument, task_names

__all__ = [
    "ATTEMPT_POLICIES",
    "CHOICE_LETTERS",
    "CONTROL_COMMIT",
    "CONTROL_SETS",
    "CONTROL_URL",
    "DEMO_TASK",
    "GSM8K_INSTRUCTION",
    "ITEMS_ENV",
    "KINDS",
    "MMLU_INSTRUCTION",
    "AttemptPolicy",
    "ControlSet",
    "Elicitation",
    "Instrument",
    "Item",
    "Kind",
    "Scale",
    "available_instruments",
    "demo_task",
    "demo_task_items",
    "demo_task_json",
    "elicitation_of",
    "fetch_control_items",
    "fill_template",
    "gsm8k_prompt",
    "load_instrument",
    "load_task",
    "mmlu_prompt",
    "task_instrument",
    "task_names",
]

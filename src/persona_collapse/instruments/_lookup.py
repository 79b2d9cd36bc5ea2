"""Finding instruments by name or file."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

from ..errors import DataError
from ._control import CONTROL_SETS, control_elicitation, load_task
from ._demo_task import DEMO_TASK, DEMO_TASK_FORMAT, demo_task
from ._elicitation import Elicitation
from ._instrument import Instrument


def available_instruments() -> list[str]:
    """Names of the instruments shipped with the package."""
    data = resources.files("persona_collapse.instruments") / "data"
    return sorted(p.name.removesuffix(".json") for p in data.iterdir() if p.name.endswith(".json"))


@cache
def _load_builtin(name: str) -> Instrument:
    data = resources.files("persona_collapse.instruments") / "data" / f"{name}.json"
    return Instrument.from_dict(json.loads(data.read_text(encoding="utf-8")))


def task_names() -> list[str]:
    """Names of the built-in task instruments: the capability control's ``mmlu`` and ``gsm8k``
    (their items are downloaded) and the offline demo's ``demo-arithmetic`` (generated)."""
    return [*CONTROL_SETS, DEMO_TASK]


def elicitation_of(spec: str | Path) -> Elicitation | None:
    """How the instrument ``spec`` (a name or a JSON file's path) is asked; None when there
    is no such instrument (e.g. a user's ``--items`` set, known by its own name).

    A built-in task's (one of :func:`task_names`) comes from its declaration: no item file
    is read, hashed or downloaded. Any other is loaded (a built-in questionnaire is cached).
    """
    name = str(spec)
    if name in CONTROL_SETS:
        return control_elicitation(name)
    if name == DEMO_TASK:
        return control_elicitation(DEMO_TASK_FORMAT)
    try:
        return load_instrument(name).elicitation
    except DataError:
        return None


def load_instrument(spec: str | Path = "mfq30", *, items: str | Path | None = None) -> Instrument:
    """An instrument by built-in name (``mfq30``, ``bfi44``), a task (``mmlu``, ``gsm8k``: the
    pinned item set, or ``items``, a user's item-set file in the same JSON shape; the demo's
    generated ``demo-arithmetic``) or from a JSON file path."""
    name = str(spec)
    if name in CONTROL_SETS:
        return load_task(name, items)
    if name == DEMO_TASK and items is None:
        return demo_task()
    if items is not None:
        raise DataError(
            f"--items gives the items of a task (--instrument {' or '.join(CONTROL_SETS)}), "
            f"not of {name}"
        )
    if name in available_instruments():
        return _load_builtin(name)
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        try:
            return Instrument.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(
                f"{path}: not a valid UTF-8 JSON instrument definition ({exc})"
            ) from exc
    raise DataError(
        f"unknown instrument {name!r}: use one of "
        f"{', '.join([*available_instruments(), *task_names()])} "
        "or the path of a JSON instrument file"
    )

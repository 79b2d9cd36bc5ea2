"""The capability-control task instruments: MMLU and GSM8K as asked by Costa & Vicente (2026).

Item sets: the authors' draws (public repository, commit
:data:`CONTROL_COMMIT`, folder ``capability-control/data``): 228 MMLU items,
4 per subject over 57 subjects (seed 1337), from MMLU (Hendrycks et al.
2021, "Measuring Massive Multitask Language Understanding", ICLR; MIT
licence), and 100 GSM8K problems (seed 1337) from GSM8K (Cobbe et al. 2021,
"Training Verifiers to Solve Math Word Problems", arXiv 2110.14168; MIT
licence). Each file is downloaded once, sha256-checked and cached like the
persona file; ``PERSONA_COLLAPSE_CONTROL_ITEMS`` names a local folder holding
``items_mmlu.json`` and ``items_gsm8k.json`` instead (checked the same way).

Item-set JSON shape (also for ``--items FILE``): ``{"items": [...]}`` (an
optional ``"name"`` names the set; otherwise the file stem), each item
``{"item_id", "question", "answer"}`` and for MMLU ``"choices"`` (a list of
four strings) and ``"subject"``. ``item_id`` is a whole number >= 0; a GSM8K
answer is a number (thousands commas allowed), an MMLU answer a letter A-D.

The prompt is one user message. MMLU: the question, a blank line, the options
``A. ...`` to ``D. ...`` one per line, a blank line, :data:`MMLU_INSTRUCTION`;
one token, T = 0.1. GSM8K: the question, a blank line,
:data:`GSM8K_INSTRUCTION`; up to 512 tokens, T = 0.1. Both are asked once per
slot (a reply that does not parse is a format failure, never asked again).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .._downloads import Wording, cache_dir, download_pinned, sha256_file, verify_pinned_file
from ..errors import DataError
from ._elicitation import Elicitation
from ._instrument import Instrument

CONTROL_REPOSITORY = "bastoscostadavi/persona-moral-collapse-in-emergent-misalignment"
CONTROL_COMMIT = "dbfb8b8bdeb60998036776818dfed95af3bb0dd4"
CONTROL_URL = (
    f"https://raw.githubusercontent.com/{CONTROL_REPOSITORY}/{CONTROL_COMMIT}/"
    "capability-control/data"
)
"""Download root of the item sets (``{root}/items_mmlu.json``) at the pinned commit."""

ITEMS_ENV = "PERSONA_COLLAPSE_CONTROL_ITEMS"
"""Environment variable naming a local folder with ``items_mmlu.json`` and ``items_gsm8k.json``."""

MMLU_INSTRUCTION = (
    "Your response should start with a single letter from A to D, followed by your reasoning."
)
GSM8K_INSTRUCTION = (
    "Solve the problem. End your response with the final numeric answer on its own line, "
    "in the form '#### <answer>'."
)
CHOICE_LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
"""MMLU's answer labels (also the default labels of ``protocol.parse_choice``)."""

CITATIONS = {
    "mmlu": "MMLU: Hendrycks et al. (2021), Measuring Massive Multitask Language "
    "Understanding, ICLR (MIT licence); items drawn by Costa & Vicente (2026)",
    "gsm8k": "GSM8K: Cobbe et al. (2021), Training Verifiers to Solve Math Word Problems, "
    "arXiv 2110.14168 (MIT licence); items drawn by Costa & Vicente (2026)",
}


@dataclass(frozen=True)
class ControlSet:
    """A pinned item set: its task (``mmlu``/``gsm8k``), file name and sha256."""

    task: str
    file: str
    sha256: str


CONTROL_SETS: dict[str, ControlSet] = {
    "mmlu": ControlSet(
        "mmlu",
        "items_mmlu.json",
        "3506b98bee7ad875351f1ef8b7e8494d989e465578b8e3b3d2102f6269dade27",
    ),
    "gsm8k": ControlSet(
        "gsm8k",
        "items_gsm8k.json",
        "f83912d1472cdfc7ec82a854d49537f9bd22e282411e4c20038d6432890217db",
    ),
}
"""The two capability-control tasks by instrument name."""

_ELICITATION = {
    "mmlu": {
        "kind": "task",
        "parser": "letter",
        "answers": list(CHOICE_LETTERS),
        "max_tokens": 1,
        "logprobs": False,
        "attempt_policy": "once",
    },
    "gsm8k": {
        "kind": "task",
        "parser": "number",
        "max_tokens": 512,
        "logprobs": False,
        "attempt_policy": "once",
    },
}


def control_elicitation(task: str) -> Elicitation:
    """How the capability-control ``task`` (``mmlu``/``gsm8k``) is asked, as declared here:
    read without its items (no download, no hashing)."""
    return Elicitation.from_dict(_ELICITATION[task])


def mmlu_prompt(question: str, choices: list[str]) -> str:
    """The MMLU user message: question, blank line, ``A. ...``-``D. ...``, blank line, instruction."""
    options = "\n".join(
        f"{letter}. {text}" for letter, text in zip(CHOICE_LETTERS, choices, strict=True)
    )
    return f"{question}\n\n{options}\n\n{MMLU_INSTRUCTION}"


def gsm8k_prompt(question: str) -> str:
    """The GSM8K user message: question, blank line, instruction."""
    return f"{question}\n\n{GSM8K_INSTRUCTION}"


def _verified(path: Path, pinned: ControlSet) -> Path:
    return verify_pinned_file(
        path,
        pinned.sha256,
        missing=f"{path} does not exist; point {ITEMS_ENV} at a folder holding {pinned.file} "
        "or pass --items FILE",
        mismatch=lambda digest: (
            f"{path} is not the published {pinned.file} (sha256 {digest[:12]}..., expected "
            f"{pinned.sha256[:12]}...); remove it or point {ITEMS_ENV} at the right folder"
        ),
        error=DataError,
    )


def fetch_control_items(task: str, *, url: str = CONTROL_URL, timeout_s: float = 30.0) -> Path:
    """Path of a verified copy of the ``task`` (``mmlu``/``gsm8k``) item set, downloaded once.

    Order: ``$PERSONA_COLLAPSE_CONTROL_ITEMS/<file>``, then the cache, then
    ``url/<file>`` (written to the cache only after its sha256 matches).
    """
    pinned = CONTROL_SETS[task]
    local = os.environ.get(ITEMS_ENV, "").strip()
    if local:
        return _verified(Path(local) / pinned.file, pinned)
    cached = cache_dir() / "controls" / f"{pinned.sha256[:12]}_{pinned.file}"
    if cached.is_file():
        return _verified(cached, pinned)
    source = f"{url.rstrip('/')}/{pinned.file}"
    return download_pinned(
        source,
        cached,
        sha256=pinned.sha256,
        timeout_s=timeout_s,
        wording=Wording(
            f"the {task} items",
            offline=f"set {ITEMS_ENV} to a folder holding {pinned.file} or pass --items FILE",
            changed="use a verified local copy",
            error=DataError,
        ),
    ).path


def _item_id(raw: dict[str, Any]) -> int:
    """The item's id: a whole number >= 0 (as a JSON integer or digit string), as task CSVs
    hold it."""
    value = raw["item_id"]
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"item_id {value!r} is not a whole number >= 0; renumber that item")
    return value


def _numeric_gold(raw: dict[str, Any], item_id: int) -> str:
    """A GSM8K gold answer as written, refused unless it is a number (no reply could equal it)."""
    gold = raw["answer"]
    plain = str(gold).strip().replace(",", "").replace("\u2212", "-")
    try:
        number = None if gold is None or isinstance(gold, bool) else Decimal(plain)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise DataError(
            f"GSM8K item {item_id} has answer {gold!r}, not a number; give the numeric answer"
        )
    return str(gold)


def _mmlu_item(raw: dict[str, Any]) -> dict[str, Any]:
    item_id = _item_id(raw)
    if not isinstance(raw["choices"], list):
        raise DataError(f"MMLU item {item_id} has choices {raw['choices']!r}, not a list of 4")
    choices = [str(c) for c in raw["choices"]]
    if len(choices) != len(CHOICE_LETTERS):
        raise DataError(f"MMLU item {item_id} has {len(choices)} choices, not a list of 4")
    return {
        "id": item_id,
        "text": mmlu_prompt(str(raw["question"]), choices),
        "subscale": str(raw["subject"]),
        "answer": str(raw["answer"]).strip().upper(),
    }


def _gsm8k_item(raw: dict[str, Any]) -> dict[str, Any]:
    item_id = _item_id(raw)
    return {
        "id": item_id,
        "text": gsm8k_prompt(str(raw["question"])),
        "answer": _numeric_gold(raw, item_id),
    }


def task_instrument(
    task: str,
    doc: dict[str, Any],
    *,
    name: str,
    items_sha256: str,
    title: str | None = None,
    citation: str | None = None,
) -> Instrument:
    """The ``task`` (``mmlu``/``gsm8k``) instrument over the item set ``doc`` (see the module doc).

    ``name`` is the instrument's (the task, or a user's set name);
    ``items_sha256`` the digest of the item file, kept in the definition (so
    another item set gives another content hash) and recorded by runs.
    ``title`` and ``citation`` replace the task's (for a set that is not the
    task's own, e.g. the demo's generated items asked in the MMLU format).
    """
    try:
        raw_items = list(doc["items"])
        if task == "mmlu":
            items = [_mmlu_item(raw) for raw in raw_items]
            for item in items:
                if item["answer"] not in CHOICE_LETTERS:
                    raise DataError(
                        f"MMLU item {item['id']} has answer {item['answer']!r}, not A-D"
                    )
            subjects = list(dict.fromkeys(item["subscale"] for item in items))
        else:
            items = [_gsm8k_item(raw) for raw in raw_items]
            subjects = ["all"]
    except DataError as exc:
        raise DataError(f"the {task} item set {name!r}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"the {task} item set {name!r} is malformed ({exc!r}); each item needs item_id, "
            "question and answer" + (", choices and subject" if task == "mmlu" else "")
        ) from None
    return Instrument.from_dict(
        {
            "name": name,
            "title": title or (task.upper() if name == task else f"{name} ({task.upper()} format)"),
            "citation": CITATIONS[task] if citation is None else citation,
            "subscales": subjects,
            "items": items,
            "elicitation": _ELICITATION[task],
            "items_sha256": items_sha256,
        }
    )


def _read_items(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM is allowed
    except OSError as exc:
        raise DataError(f"cannot read the item set {path} ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a valid UTF-8 JSON item set ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise DataError(f"{path}: an item set is a JSON object with an 'items' list")
    return doc


def load_task(task: str, items: str | os.PathLike[str] | None = None) -> Instrument:
    """The ``task`` instrument (``mmlu``/``gsm8k``): the pinned item set, or ``items`` (a file).

    A user's set is named by its ``"name"`` field, else its file stem; its
    sha256 is recorded like the pinned set's (the pinned set's is its pin: the file was
    checked against it when fetched, so it is not hashed again).
    """
    if task not in CONTROL_SETS:
        raise DataError(f"unknown task {task!r}: use one of {', '.join(CONTROL_SETS)}")
    path = fetch_control_items(task) if items is None else Path(items)
    doc = _read_items(path)
    name = task if items is None else str(doc.get("name") or path.stem)
    digest = CONTROL_SETS[task].sha256 if items is None else sha256_file(path)
    return task_instrument(task, doc, name=name, items_sha256=digest)

"""Recognising what a chat prompt asks: which persona, which item, or neither.

The instrument's persona and self templates are turned into regular
expressions, so the same code reads MFQ-30, BFI-44 or any instrument file.
Judge prompts (emergent-misalignment verification) are recognised by their
``[ANSWER START]`` / ``[ANSWER END]`` markers, multiple-choice task prompts
(the capability control's format, e.g. the demo's ``demo-arithmetic``) by
their closing sentence :data:`~persona_collapse.instruments.MMLU_INSTRUCTION`;
a known task item (one of the task instruments given) also gives its gold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from ..instruments import MMLU_INSTRUCTION, Instrument

PromptKind = Literal["persona", "self", "judge", "task", "free"]
JudgeAspect = Literal["aligned", "coherent"]

_PLACEHOLDER = re.compile(r"\{(persona|question)\}")
_JUDGE = re.compile(
    r"\[QUESTION START\]\n?(.*?)\n?\[QUESTION END\].*?\[ANSWER START\]\n?(.*?)\n?\[ANSWER END\]",
    re.DOTALL,
)


@dataclass(frozen=True)
class PromptInfo:
    """What a prompt asks.

    ``kind`` is ``persona`` (persona template with a known item), ``self``
    (item without persona), ``judge`` (a judge prompt: ``aspect`` and the
    judged ``question`` / ``answer`` are set), ``task`` (a multiple-choice
    task prompt: ``labels`` are its answer letters; ``item_id`` and ``gold``
    are set when the item is known, else None) or ``free`` (anything else).
    ``logprob_suffix`` is True when the instrument's logprob suffix was appended.
    """

    kind: PromptKind
    persona: str | None = None
    item_id: int | None = None
    logprob_suffix: bool = False
    aspect: JudgeAspect | None = None
    question: str | None = None
    answer: str | None = None
    gold: str | None = None
    labels: tuple[str, ...] = ()


def _template_regex(template: str) -> re.Pattern[str]:
    """A full-match regex for ``template`` with named groups for its placeholders."""
    parts: list[str] = []
    pos = 0
    seen: set[str] = set()
    for m in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[pos : m.start()]))
        name = m.group(1)
        # A repeated placeholder must repeat the same text.
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*)")
        seen.add(name)
        pos = m.end()
    parts.append(re.escape(template[pos:]))
    return re.compile("".join(parts), re.DOTALL)


_LETTERS = ("A", "B", "C", "D")


def _task_index(tasks: Sequence[Instrument]) -> dict[str, PromptInfo]:
    """The prompts of the multiple-choice items of ``tasks``, each with its id, gold, labels."""
    return {
        task.self_prompt(item): PromptInfo(
            "task", item_id=item.id, gold=item.gold, labels=task.elicitation.answers
        )
        for task in tasks
        if task.kind == "task" and task.elicitation.answers
        for item in task.items
    }


class PromptParser:
    """Identifies persona and item in prompts rendered from ``instrument``, and the items of
    the multiple-choice ``tasks``."""

    def __init__(self, instrument: Instrument, tasks: Sequence[Instrument] = ()) -> None:
        self.instrument = instrument
        self._tasks = _task_index(tasks)
        self._persona_re = _template_regex(instrument.persona_template)
        self._self_re = _template_regex(instrument.self_template)
        self._by_prompt = {instrument.item_prompt(it): it.id for it in instrument.items}
        # Longest wording first, so an item whose text contains another's wins.
        self._by_text = sorted(
            ((it.text, it.id) for it in instrument.items), key=lambda t: -len(t[0])
        )
        self.identify = lru_cache(maxsize=65536)(self._identify)

    def _item_of(self, question: str) -> tuple[int | None, bool]:
        """(item id or None, whether the logprob suffix was stripped) for a question part."""
        suffix = self.instrument.logprob_suffix
        had_suffix = bool(suffix) and question.endswith(suffix)
        core = question[: len(question) - len(suffix)] if had_suffix else question
        item_id = self._by_prompt.get(core)
        if item_id is None:
            item_id = self._by_prompt.get(core.strip())
        if item_id is None:
            item_id = next((i for text, i in self._by_text if text in core), None)
        return item_id, had_suffix

    def _identify(self, prompt: str) -> PromptInfo:
        judged = _JUDGE.search(prompt)
        if judged is not None:
            low = prompt.lower()
            aspect: JudgeAspect = "coherent" if "coheren" in low else "aligned"
            return PromptInfo(
                "judge", aspect=aspect, question=judged.group(1), answer=judged.group(2)
            )
        known = self._tasks.get(prompt)
        if known is not None:
            return known
        if prompt.rstrip().endswith(MMLU_INSTRUCTION):
            return PromptInfo("task", labels=_LETTERS)
        m = self._persona_re.fullmatch(prompt)
        if m is not None and "persona" in m.groupdict():
            item_id, had_suffix = self._item_of(m.group("question"))
            if item_id is not None:
                return PromptInfo("persona", m.group("persona"), item_id, had_suffix)
        m = self._self_re.fullmatch(prompt)
        if m is not None:
            question = m.groupdict().get("question", prompt)
            item_id, had_suffix = self._item_of(question)
            if item_id is not None:
                return PromptInfo("self", None, item_id, had_suffix)
        return PromptInfo("free")

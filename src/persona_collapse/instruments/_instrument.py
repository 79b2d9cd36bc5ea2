"""Instruments as data: items, scale, subscales, prompt templates and how they are asked."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import DataError
from ._elicitation import Elicitation, hashed_definition

_PLACEHOLDER = re.compile(r"\{(item|persona|question)\}")


def fill_template(template: str, **values: str) -> str:
    """Fill ``{item}``, ``{persona}`` or ``{question}`` in one pass.

    Unlike :meth:`str.format`, braces inside the substituted text (persona
    descriptions sometimes contain them) are never interpreted.
    """
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


@dataclass(frozen=True)
class Scale:
    """An integer rating scale, inclusive on both ends (MFQ-30: 0-5, BFI-44: 1-5)."""

    low: int
    high: int

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1))

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def __contains__(self, rating: object) -> bool:
        return isinstance(rating, int) and self.low <= rating <= self.high


@dataclass(frozen=True)
class Item:
    """One scored item.

    ``section`` selects the prompt template, ``subscale`` the trait or moral
    foundation it scores (a task's subject, e.g. MMLU's), ``reverse`` whether
    profiles score it as ``low + high - rating`` (S and sigma_bar are
    unaffected by reversal); ``gold`` is a task item's correct answer as
    written in its item set (None for a questionnaire item).
    """

    id: int
    section: str
    subscale: str
    text: str
    reverse: bool = False
    gold: str | None = None


@dataclass(frozen=True)
class Instrument:
    """A questionnaire or task: the items and everything needed to render and ask them.

    Loaded from a JSON file (see ``instruments/data``); nothing in the code is
    specific to one questionnaire. ``elicitation`` says how it is asked (kind,
    answer parser, request, attempt policy; the published protocol by
    default). A task (``kind: task``) may leave out ``subscales``,
    ``section_templates``, ``persona_template``, ``scale`` and the items'
    ``section``/``subscale``; each item's prompt is its text and it carries
    its gold ``answer``; its scale is the score 0 (wrong) .. 1 (correct).
    """

    name: str
    title: str
    citation: str
    scale: Scale
    subscales: tuple[str, ...]
    subscale_labels: dict[str, str]
    section_templates: dict[str, str]
    persona_template: str
    self_template: str
    logprob_suffix: str
    items: tuple[Item, ...]
    notes: str = ""
    elicitation: Elicitation = field(default_factory=Elicitation)
    items_sha256: str = ""
    """sha256 of the item-set file a task was built from (``--items`` or the pinned set); ""."""
    source_json: str = field(default="", repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instrument:
        try:
            how = Elicitation.from_dict(data.get("elicitation"))
            base = _task_defaults(how) if how.kind == "task" else {}
            full = {**base, **data}
            items = tuple(
                Item(
                    id=int(it["id"]),
                    section=str(it.get("section", "task") if how.kind == "task" else it["section"]),
                    subscale=str(
                        it.get("subscale", "all") if how.kind == "task" else it["subscale"]
                    ),
                    text=str(it["text"]),
                    reverse=bool(it.get("reverse", False)),
                    gold=str(it["answer"]) if how.kind == "task" else None,
                )
                for it in full["items"]
            )
            inst = cls(
                name=str(full["name"]),
                title=str(full.get("title", full["name"])),
                citation=str(full.get("citation", "")),
                scale=Scale(int(full["scale"]["low"]), int(full["scale"]["high"])),
                subscales=tuple(str(s) for s in full["subscales"]),
                subscale_labels={
                    str(k): str(v) for k, v in full.get("subscale_labels", {}).items()
                },
                section_templates={str(k): str(v) for k, v in full["section_templates"].items()},
                persona_template=str(full["persona_template"]),
                self_template=str(full.get("self_template", "{question}")),
                logprob_suffix=str(full.get("logprob_suffix", "")),
                items=items,
                notes=str(full.get("notes", "")),
                elicitation=how,
                items_sha256=str(full.get("items_sha256", "")),
                source_json=json.dumps(hashed_definition(data), sort_keys=True, ensure_ascii=False),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"instrument definition is incomplete or malformed ({exc!r}); "
                "it needs name, scale {low, high}, subscales, section_templates, "
                "persona_template and items [{id, section, subscale, text}] "
                "(a task's items: [{id, text, answer}])"
            ) from exc
        inst._validate()
        return inst

    def _validate(self) -> None:
        if not self.items:
            raise DataError(f"instrument {self.name}: it has no items")
        if self.scale.low >= self.scale.high:
            raise DataError(
                f"instrument {self.name}: scale low ({self.scale.low}) must be below "
                f"high ({self.scale.high})"
            )
        if len(set(self.subscales)) != len(self.subscales):
            raise DataError(f"instrument {self.name}: subscale names are not unique")
        ids = [it.id for it in self.items]
        if len(set(ids)) != len(ids):
            raise DataError(f"instrument {self.name}: item ids are not unique")
        for it in self.items:
            if it.section not in self.section_templates:
                raise DataError(
                    f"instrument {self.name}: item {it.id} has unknown section {it.section!r}"
                )
            if it.subscale not in self.subscales:
                raise DataError(
                    f"instrument {self.name}: item {it.id} has unknown subscale {it.subscale!r}"
                )

    @property
    def item_ids(self) -> npt.NDArray[np.int64]:
        """Item ids in instrument order."""
        return np.array([it.id for it in self.items], dtype=np.int64)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def item(self, item_id: int) -> Item:
        for it in self.items:
            if it.id == item_id:
                return it
        raise DataError(f"instrument {self.name} has no item {item_id}")

    def subscale_index(self) -> npt.NDArray[np.int64]:
        """For each item (instrument order), the index of its subscale in :attr:`subscales`."""
        return np.array([self.subscales.index(it.subscale) for it in self.items], dtype=np.int64)

    def reverse_mask(self) -> npt.NDArray[np.bool_]:
        return np.array([it.reverse for it in self.items], dtype=bool)

    def item_prompt(self, item: Item | int) -> str:
        """The question text for an item: its section template filled with the item wording."""
        # Any integer id (also numpy's, as in ``item_ids``) is looked up; an Item is used as is.
        it = item if isinstance(item, Item) else self.item(int(item))
        return fill_template(self.section_templates[it.section], item=it.text)

    def persona_prompt(self, item: Item | int, persona: str) -> str:
        """The one user message of persona mode."""
        return fill_template(
            self.persona_template, persona=persona, question=self.item_prompt(item)
        )

    def self_prompt(self, item: Item | int) -> str:
        """The one user message of self (no-persona) mode."""
        return fill_template(self.self_template, question=self.item_prompt(item))

    @property
    def kind(self) -> str:
        """``questionnaire`` or ``task`` (see :class:`Elicitation`)."""
        return self.elicitation.kind

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON definition: identifies the exact prompts."""
        return hashlib.sha256(self.source_json.encode("utf-8")).hexdigest()


def _task_defaults(how: Elicitation) -> dict[str, Any]:
    """What a task instrument may leave out: its scale is the score (0 wrong, 1 correct)."""
    return {
        "scale": {"low": 0, "high": 1},
        "subscales": ["all"],
        "section_templates": {"task": "{item}"},
        "persona_template": "{question}",
    }

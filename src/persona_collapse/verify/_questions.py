"""The free-form evaluation questions and judge prompts (Betley et al. 2025).

A question set is data: ids, one or more paraphrases per question, an
optional system prompt, and the two judge prompts (``aligned`` and
``coherent``) with ``{question}`` / ``{answer}`` placeholders. The 8 main
questions ship as package data (``data/em_betley8.json``, MIT licence of the
original authors). ``--questions FILE`` accepts:

* JSON in the package layout (``questions: [{id, paraphrases}]``) or in the
  reference layout (``questions: [{id, text}]``), either with a top-level
  ``judge_prompts`` object (strings or lists of lines);
* YAML in the original ``first_plot_questions.yaml`` layout: a list of
  ``{id, paraphrases: [..], system?, judge_prompts?: {aligned, coherent}}``
  (needs PyYAML).

Questions without their own judge prompts use the file's, else the package's.
Sample ``k`` (0-based) of a question asks paraphrase ``k mod len(paraphrases)``,
so samples spread evenly and deterministically over the paraphrases.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DataError

__all__ = [
    "ASPECTS",
    "DEFAULT_QUESTIONS",
    "EvalQuestion",
    "QuestionSet",
    "load_questions",
    "render_judge_prompt",
]

ASPECTS = ("aligned", "coherent")
"""The two judged aspects, in this order everywhere."""

DEFAULT_QUESTIONS = "em-betley8"
"""Name of the packaged set: the 8 main questions of Betley et al. 2025."""


@dataclass(frozen=True)
class EvalQuestion:
    """One free-form question: ``paraphrases`` (at least one), optional ``system`` prompt.

    ``judge_prompts`` maps ``aligned`` and ``coherent`` to templates with
    ``{question}`` and ``{answer}`` placeholders.
    """

    id: str
    paraphrases: tuple[str, ...]
    judge_prompts: dict[str, str]
    system: str | None = None

    def paraphrase(self, sample: int) -> str:
        """The paraphrase asked in sample ``sample`` (0-based): ``sample mod n``."""
        return self.paraphrases[sample % len(self.paraphrases)]

    def messages(self, sample: int) -> list[dict[str, str]]:
        """The chat asked in sample ``sample``: optional system message, then the question."""
        out = [] if self.system is None else [{"role": "system", "content": self.system}]
        out.append({"role": "user", "content": self.paraphrase(sample)})
        return out


@dataclass(frozen=True)
class QuestionSet:
    """Questions in order, where they came from, and a content hash (for resuming)."""

    questions: tuple[EvalQuestion, ...]
    source: str
    sha256: str

    def __len__(self) -> int:
        return len(self.questions)

    @property
    def ids(self) -> list[str]:
        return [q.id for q in self.questions]

    def by_id(self, question_id: str) -> EvalQuestion:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)


def render_judge_prompt(template: str, question: str, answer: str) -> str:
    """``template`` with ``{question}`` and ``{answer}`` replaced literally, in one pass.

    Not ``str.format``: answers hold braces (code). Text inserted for one
    placeholder is never searched for the other.
    """
    parts = template.split("{answer}")
    return answer.join(p.replace("{question}", question) for p in parts)


def _text(value: Any, where: str) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    if isinstance(value, str):
        return value
    raise DataError(f"{where} must be a string or a list of lines")


def _judge_prompts(raw: Any, where: str, fallback: dict[str, str] | None) -> dict[str, str]:
    if raw is None:
        if fallback is None:
            raise DataError(f"{where} has no judge_prompts (aligned and coherent)")
        return dict(fallback)
    if not isinstance(raw, dict):
        raise DataError(f"{where}: judge_prompts must be an object with aligned and coherent")
    out = dict(fallback or {})
    for aspect in ASPECTS:
        if aspect in raw:
            out[aspect] = _text(raw[aspect], f"{where}: judge prompt {aspect!r}")
    missing = [a for a in ASPECTS if a not in out]
    if missing:
        raise DataError(f"{where}: judge_prompts lacks {', '.join(missing)}")
    for aspect in ASPECTS:
        for placeholder in ("{question}", "{answer}"):
            if placeholder not in out[aspect]:
                raise DataError(
                    f"{where}: judge prompt {aspect!r} has no {placeholder} placeholder"
                )
    return out


def _question(raw: Any, index: int, where: str, judges: dict[str, str]) -> EvalQuestion:
    at = f"{where}: question {index + 1}"
    if not isinstance(raw, dict):
        raise DataError(f"{at} must be an object with id and paraphrases (or text)")
    qid = raw.get("id")
    if not isinstance(qid, str) or not qid.strip():
        raise DataError(f"{at} has no id (a non-empty string)")
    at = f"{where}: question {qid!r}"
    if "paraphrases" in raw:
        paras = raw["paraphrases"]
        if not isinstance(paras, list) or not paras:
            raise DataError(f"{at}: paraphrases must be a non-empty list of strings")
    elif "text" in raw:
        paras = [raw["text"]]
    else:
        raise DataError(f"{at} has neither paraphrases nor text")
    if not all(isinstance(p, str) and p.strip() for p in paras):
        raise DataError(f"{at}: every paraphrase must be a non-empty string")
    system = raw.get("system")
    if system is not None and not isinstance(system, str):
        raise DataError(f"{at}: system must be a string")
    prompts = _judge_prompts(raw.get("judge_prompts"), at, judges)
    return EvalQuestion(qid.strip(), tuple(paras), prompts, system or None)


def _packaged() -> Any:
    ref = resources.files(__package__).joinpath("data", "em_betley8.json")
    return json.loads(ref.read_text(encoding="utf-8"))


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; pass a JSON or YAML question file") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise DataError(
                f"{path} is YAML and PyYAML is not installed: pip install pyyaml "
                "(or convert the file to JSON)"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            at = f" (line {line + 1})" if line is not None else ""
            raise DataError(f"{path} is not valid YAML{at}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None


def load_questions(spec: str | Path | None = None, ids: list[str] | None = None) -> QuestionSet:
    """The question set ``spec`` names: ``None``/``em-betley8`` (packaged) or a file.

    ``ids`` keeps only those questions, in the given order. Raises
    :class:`DataError` (one line) for unreadable files, missing fields,
    duplicate ids or unknown ``ids``.
    """
    packaged = _packaged()
    default_judges = _judge_prompts(packaged["judge_prompts"], "packaged questions", None)
    if spec is None or str(spec) == DEFAULT_QUESTIONS:
        data, where = packaged, DEFAULT_QUESTIONS
    else:
        path = Path(spec)
        if not path.is_file():
            raise DataError(f"question file {path} does not exist; check --questions")
        data = _read_file(path)
        where = str(path)
    if isinstance(data, list):
        items, judges = data, default_judges
    elif isinstance(data, dict) and isinstance(data.get("questions"), list):
        items = data["questions"]
        judges = _judge_prompts(data.get("judge_prompts"), where, default_judges)
    else:
        raise DataError(
            f"{where} holds no questions: expected a list of {{id, paraphrases}} (YAML layout) "
            "or an object with a 'questions' list"
        )
    if not items:
        raise DataError(f"{where} holds no questions")
    questions = [_question(raw, i, where, judges) for i, raw in enumerate(items)]
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise DataError(f"{where}: question id {q.id!r} appears twice")
        seen.add(q.id)
    if ids:
        unknown = [i for i in ids if i not in seen]
        if unknown:
            raise DataError(
                f"{where} has no question {', '.join(map(repr, unknown))}; "
                f"known ids: {', '.join(q.id for q in questions)}"
            )
        by_id = {q.id: q for q in questions}
        questions = [by_id[i] for i in ids]
    canonical = json.dumps(
        [[q.id, q.paraphrases, q.system, q.judge_prompts] for q in questions], sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return QuestionSet(tuple(questions), where, digest)

"""The simulated respondent: answers raw chat prompts like a model would (SIMULATED)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..instruments import Instrument, demo_task, load_instrument
from ..protocol import BASE
from ._hashing import stable_rng
from ._latent import FloatArray, LatentModel, tempered
from ._presets import VariantParams, resolve_variant
from ._prompts import PromptInfo, PromptParser
from ._text import (
    NON_DIGIT_TOKENS,
    TASK_FAILURE_TEXT,
    TASK_REASON,
    count_tokens,
    free_answer,
    judge_center,
    rating_sentence,
    truncate_tokens,
)

_CACHE_LIMIT = 20_000
#: Relative weights of the non-digit tokens in ``top_logprobs``.
_NON_DIGIT_WEIGHTS = np.array([0.5, 0.25, 0.15, 0.1])
_FREE_FIRST_TOKENS: tuple[tuple[str, float], ...] = (
    ("I", 0.4),
    ("Sure", 0.2),
    ("That", 0.15),
    ("Well", 0.15),
    ("Hello", 0.1),
)


@dataclass(frozen=True)
class Completion:
    """One simulated generation.

    ``finish_reason`` is ``length`` when ``max_tokens`` cut the text (a
    one-token rating always counts as cut: the model would go on to give its
    reasoning) and ``stop`` otherwise. Token counts are approximate (words and
    punctuation marks).
    """

    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int


class SimulatedRespondent:
    """A SIMULATED questionnaire respondent with persona-dependent answers.

    No language model is involved: ratings come from the latent model described
    in :class:`VariantParams`. Use it for tests, benchmarks and the offline
    demo, never as data about real models.

    Args:
        variant: A preset name (``base``, ``secure``, ``insecure``) or params.
        instrument: The questionnaire whose prompts it recognises (default
            MFQ-30); an :class:`Instrument` or a name for ``load_instrument``.
        seed: World seed. Respondents with the same seed share item levels and
            persona profiles (like variants fine-tuned from one base model).
        tasks: Multiple-choice task instruments whose gold answers it knows
            (default: the demo's ``demo-arithmetic``). A task prompt of another
            item set (same closing sentence) is answered at chance level.

    Determinism: every method is a pure function of the seed, its arguments
    and, for sampling methods, the state of the ``rng`` the caller passes. To
    make each slot reproducible, seed that generator from the slot, e.g.
    ``stable_rng(seed, prompt, repetition, attempt)``.
    """

    def __init__(
        self,
        variant: str | VariantParams = BASE,
        *,
        instrument: Instrument | str | None = None,
        seed: int = 0,
        tasks: Sequence[Instrument] | None = None,
    ) -> None:
        self.params = resolve_variant(variant)
        if instrument is None or isinstance(instrument, str):
            instrument = load_instrument(instrument or "mfq30")
        self.instrument = instrument
        self.seed = int(seed)
        self._latent = LatentModel(instrument, self.params, self.seed)
        self._parser = PromptParser(instrument, (demo_task(),) if tasks is None else tasks)
        self._index = {int(i): k for k, i in enumerate(instrument.item_ids)}
        self._low = instrument.scale.low
        self._high = instrument.scale.high
        self._logp: dict[str | None, FloatArray] = {}
        self._cdf: dict[tuple[str | None, float], FloatArray] = {}
        self._prompt_tokens = lru_cache(maxsize=65536)(count_tokens)

    @property
    def name(self) -> str:
        """The variant's name (``base``, ``secure``, ``insecure`` or a custom label)."""
        return self.params.name

    def describe(self) -> str:
        """One line saying what this is, and that its data are SIMULATED."""
        return (
            f"SIMULATED respondent {self.name!r} (seed {self.seed}, instrument "
            f"{self.instrument.name}): ratings come from a latent statistical model, "
            "not from any language model; use for tests and demos only."
        )

    def __repr__(self) -> str:
        return f"SimulatedRespondent({self.name!r}, seed={self.seed})"

    # -- distributions ---------------------------------------------------------

    def identify(self, prompt: str) -> PromptInfo:
        """What ``prompt`` asks: persona and item, self mode, judge or free-form."""
        return self._parser.identify(prompt)

    def logprobs(self, persona: str | None) -> FloatArray:
        """T = 1 natural-log probabilities, shape (n_items, scale size), instrument order.

        ``persona=None`` is self mode (no persona). Cached per persona.
        """
        out = self._logp.get(persona)
        if out is None:
            if len(self._logp) >= _CACHE_LIMIT:
                self._logp.clear()
            out = self._latent.logprobs(persona)
            out.setflags(write=False)
            self._logp[persona] = out
        return out

    def _row(self, item_id: int) -> int:
        try:
            return self._index[int(item_id)]
        except KeyError:
            raise ValueError(f"instrument {self.instrument.name} has no item {item_id}") from None

    def digit_distribution(
        self, persona: str | None, item_id: int, temperature: float = 1.0
    ) -> npt.NDArray[np.float64]:
        """Probabilities over the scale values (MFQ-30: 0..5) at ``temperature``.

        A softmax of the T = 1 log-probabilities divided by ``temperature``, so
        ``p_T ∝ p_1 ** (1 / T)`` holds exactly; ``temperature=0`` is greedy.
        ``persona=None`` is self mode.
        """
        return tempered(self.logprobs(persona)[self._row(item_id)], float(temperature))

    def _cdf_row(self, persona: str | None, item_id: int, temperature: float) -> FloatArray:
        key = (persona, float(temperature))
        cdf = self._cdf.get(key)
        if cdf is None:
            if len(self._cdf) >= _CACHE_LIMIT:
                self._cdf.clear()
            cdf = np.cumsum(tempered(self.logprobs(persona), float(temperature)), axis=-1)
            self._cdf[key] = cdf
        return cdf[self._row(item_id)]

    def _sample_value(self, persona: str | None, item_id: int, temperature: float, u: float) -> int:
        cdf = self._cdf_row(persona, item_id, temperature)
        k = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
        return self._low + min(k, len(cdf) - 1)

    def sample_ratings(
        self,
        personas: Sequence[str | None],
        n: int,
        *,
        temperature: float,
        rng: np.random.Generator,
        item_ids: Sequence[int] | None = None,
    ) -> npt.NDArray[np.int64]:
        """Accepted ratings of the sampling protocol, shape (personas, items, n), vectorised.

        Non-digit answers are drawn independently of the digit, so retrying
        until a digit arrives leaves exactly :meth:`digit_distribution`; this
        samples from it directly.
        """
        rows = [self._row(i) for i in (item_ids or self.instrument.item_ids)]
        probs = np.stack([tempered(self.logprobs(p)[rows], temperature) for p in personas])
        cdf = np.cumsum(probs, axis=-1)
        u = rng.random((*probs.shape[:2], n)) * cdf[:, :, -1:]
        k = (u[..., None] >= cdf[:, :, None, :]).sum(axis=-1)
        return self._low + np.minimum(k, probs.shape[-1] - 1).astype(np.int64)

    # -- answering prompts -------------------------------------------------------

    def generate(
        self, prompt: str, *, temperature: float, max_tokens: int, rng: np.random.Generator
    ) -> Completion:
        """Answer a raw chat prompt (the last user message).

        Questionnaire prompts (persona or self template, with or without the
        logprob suffix): with ``max_tokens == 1`` a single token, a digit
        sampled from :meth:`digit_distribution` or, with probability
        ``non_digit_rate``, a non-digit token; with more tokens a short sentence
        whose first standalone integer is the sampled rating. Multiple-choice
        task prompts get a letter (:meth:`task_letter`) and a short reason, or
        with probability ``task_format_failure`` a reply without one. Judge
        prompts get a score 0-100; anything else a plausible short answer.
        """
        if max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        info = self.identify(prompt)
        prompt_tokens = self._prompt_tokens(prompt)
        if info.kind == "task":
            if float(rng.random()) < self.params.task_format_failure:
                full = TASK_FAILURE_TEXT
            else:
                full = f"{self.task_letter(prompt, temperature=temperature, rng=rng)}{TASK_REASON}"
            text, cut = truncate_tokens(full, max_tokens)
            return Completion(text, "length" if cut else "stop", prompt_tokens, count_tokens(text))
        u_non_digit, u_value = rng.random(2)
        if info.kind in ("persona", "self"):
            assert info.item_id is not None
            value = self._sample_value(info.persona, info.item_id, temperature, float(u_value))
            if max_tokens == 1:
                if u_non_digit < self.params.non_digit_rate:
                    text = NON_DIGIT_TOKENS[int(rng.integers(len(NON_DIGIT_TOKENS)))]
                else:
                    text = str(value)
                return Completion(text, "length", prompt_tokens, 1)
            full = rating_sentence(value, self._low, self._high, rng)
        elif info.kind == "judge":
            center = judge_center(info.aspect or "aligned", info.answer or "")
            jitter = 0.0 if temperature == 0 else 4.0 * float(rng.standard_normal())
            full = str(round(min(100.0, max(0.0, center + jitter))))
        else:
            full = free_answer(self.params.misaligned_rate, rng)
        text, cut = truncate_tokens(full, max_tokens)
        return Completion(text, "length" if cut else "stop", prompt_tokens, count_tokens(text))

    def usual_answer(self, prompt: str) -> str:
        """The answer letter a multiple-choice task item usually gets from this variant.

        Right (the item's gold) with probability ``task_accuracy``, else one of
        the wrong letters, uniformly; decided by the world seed and the prompt
        only, so variants sharing a seed find the same items hard. An item
        whose gold is unknown gets a letter uniformly (chance level).
        """
        info = self.identify(prompt)
        if info.kind != "task":
            raise ValueError("not a multiple-choice task prompt")
        u, pick = stable_rng(self.seed, "task", prompt).random(2)
        return self._task_draw(info, float(u), float(pick))

    def task_letter(self, prompt: str, *, temperature: float, rng: np.random.Generator) -> str:
        """One repetition's answer letter to a multiple-choice task prompt.

        With probability ``task_instability`` (never at ``temperature`` 0) a
        fresh draw, right with probability ``task_accuracy``; otherwise
        :meth:`usual_answer`. Either way the letter is right with
        probability ``task_accuracy`` (the item's gold known).
        """
        u_fresh, u, pick = rng.random(3)
        if temperature > 0 and u_fresh < self.params.task_instability:
            return self._task_draw(self.identify(prompt), float(u), float(pick))
        return self.usual_answer(prompt)

    def _task_draw(self, info: PromptInfo, u: float, pick: float) -> str:
        """The right letter when ``u < task_accuracy``, else a wrong one picked by ``pick``."""
        labels = info.labels
        if info.gold is None or info.gold not in labels:
            return labels[int(pick * len(labels))]
        if u < self.params.task_accuracy:
            return info.gold
        wrong = [label for label in labels if label != info.gold]
        return wrong[int(pick * len(wrong))]

    def answer(
        self, prompt: str, *, temperature: float, max_tokens: int, rng: np.random.Generator
    ) -> str:
        """The text of :meth:`generate`."""
        return self.generate(prompt, temperature=temperature, max_tokens=max_tokens, rng=rng).text

    def top_logprobs(self, prompt: str, k: int = 20) -> list[tuple[str, float]]:
        """The ``k`` most likely first tokens at T = 1: ``(token, natural-log probability)``.

        For questionnaire prompts every digit comes in two spellings (``"3"`` and
        ``" 3"``, split in the same proportion for every digit) and a little mass
        (``0.002 + non_digit_rate / 2``, at most 0.5) sits on non-digit tokens,
        so consumers must sum spellings and renormalise over the digits. Judge
        prompts give integer tokens around the simulated score. Sorted by
        probability, most likely first.
        """
        if k < 1:
            return []
        info = self.identify(prompt)
        entries: list[tuple[str, float]]
        if info.kind in ("persona", "self"):
            assert info.item_id is not None
            entries = self._rating_tokens(prompt, info)
        elif info.kind == "judge":
            center = judge_center(info.aspect or "aligned", info.answer or "")
            scores = np.unique(np.clip(np.round(center + np.arange(-10, 11, 5)), 0, 100))
            w = np.exp(-0.5 * ((scores - center) / 5.0) ** 2)
            logw = np.log(w / w.sum())
            entries = [(str(int(s)), float(lw)) for s, lw in zip(scores, logw, strict=True)]
        else:
            entries = [(tok, math.log(p)) for tok, p in _FREE_FIRST_TOKENS]
        entries.sort(key=lambda e: -e[1])
        return entries[:k]

    def _rating_tokens(self, prompt: str, info: PromptInfo) -> list[tuple[str, float]]:
        assert info.item_id is not None
        logp = self.logprobs(info.persona)[self._row(info.item_id)]
        other = min(0.5, 0.002 + 0.5 * self.params.non_digit_rate)
        log_digits = math.log1p(-other)
        # One split fraction per prompt for every digit: the token-level logits
        # then re-weight to any temperature exactly as the digit-level ones do
        # (p_T ∝ p^(1/T) per token and per digit agree), like a real model
        # whose spelling preference does not depend on the digit.
        rng = stable_rng(self.seed, "spellings", prompt)
        bare = float(rng.uniform(0.55, 0.95))
        entries: list[tuple[str, float]] = []
        for j, lp in enumerate(logp):
            digit = str(self._low + j)
            base = log_digits + float(lp)
            entries.append((digit, base + math.log(bare)))
            entries.append((" " + digit, base + math.log1p(-bare)))
        weights = _NON_DIGIT_WEIGHTS / _NON_DIGIT_WEIGHTS.sum()
        tokens = (*NON_DIGIT_TOKENS[:3], "\n")
        entries.extend(
            (tok, math.log(other) + math.log(w)) for tok, w in zip(tokens, weights, strict=True)
        )
        return entries

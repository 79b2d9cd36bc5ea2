"""The paper's study from a folder laid out like the published data, and its headline.

Layout (Costa & Vicente 2026, ``data/``): ``base/``, ``secure-code/`` and
``insecure-code/`` holding ``*_temp01.csv`` persona files and ``*_self.csv``
self files. A file's family is the known model name its stem starts with
(``deepseek-v3.1``, ``gpt-4.1``, ``gpt-4o``, ``qwen3-235b``; otherwise the stem
without its suffixes); its variant is ``insecure`` when the stem says
``insecure`` or ``misaligned``, ``secure`` when it says ``secure``, else ``base``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..analysis import AnalysisOptions
from ..errors import ConfigError
from ..protocol import INSECURE, SECURE
from ..stats import FamilySummary, labels_in_order
from ._study import BASE, FamilySpec, Study, VariantSources

PAPER_TITLE = "Persona-model collapse in emergent misalignment (Costa & Vicente 2026), reproduced"

#: File-stem prefix -> display name of the four model families of the paper.
PAPER_FAMILIES = {
    "deepseek-v3.1": "DeepSeek-V3.1",
    "gpt-4.1": "GPT-4.1",
    "gpt-4o": "GPT-4o",
    "qwen3-235b": "Qwen3-235B",
}

_SUFFIXES = re.compile(r"(_temp\d+)?(_self)?$")
_VARIANT_WORDS = re.compile(r"[-_](insecure|misaligned|secure)")


@dataclass(frozen=True)
class PaperFile:
    """One published CSV file: which family, variant and mode it holds."""

    path: Path
    family: str
    variant: str
    mode: str


def classify(path: Path) -> PaperFile | None:
    """Family, variant and mode of a published file name; None for files of another kind."""
    stem = path.stem.lower()
    if stem.endswith("_self"):
        mode = "self"
    elif re.search(r"_temp\d+$", stem):
        mode = "persona"
    else:
        return None
    if INSECURE in stem or "misaligned" in stem:
        variant = INSECURE
    elif SECURE in stem:
        variant = SECURE
    else:
        variant = BASE
    prefix = next(
        (p for p in sorted(PAPER_FAMILIES, key=len, reverse=True) if stem.startswith(p)), None
    )
    if prefix is not None:
        family = PAPER_FAMILIES[prefix]
    else:
        family = _VARIANT_WORDS.split(_SUFFIXES.sub("", stem))[0] or stem
    return PaperFile(path, family, variant, mode)


def paper_study(data: str | Path, options: AnalysisOptions | None = None) -> Study:
    """The study of every family found under ``data`` (each needs a base persona file)."""
    root = Path(data)
    if not root.is_dir():
        raise ConfigError(
            f"--data {root} is not a folder; give the folder holding base/, secure-code/ "
            "and insecure-code/"
        )
    found: dict[str, dict[str, dict[str, Path]]] = {}
    for path in sorted(root.rglob("*.csv")):
        info = classify(path)
        if info is None:
            continue
        slot = found.setdefault(info.family, {}).setdefault(info.variant, {})
        if info.mode in slot:
            raise ConfigError(
                f"{info.family} {info.variant} has two {info.mode} files "
                f"({slot[info.mode].name}, {path.name}); keep one"
            )
        slot[info.mode] = path
    if not found:
        raise ConfigError(
            f"--data {root} holds no *_temp01.csv or *_self.csv files; give the folder of the "
            "published data (base/, secure-code/, insecure-code/)"
        )
    families = []
    for name in sorted(found, key=str.lower):
        variants = found[name]
        missing = [lb for lb, modes in variants.items() if "persona" not in modes]
        if BASE not in variants or missing:
            what = BASE if BASE not in variants else missing[0]
            raise ConfigError(f"--data {root}: {name} has no {what} persona file (*_temp01.csv)")
        families.append(
            FamilySpec(
                name=name,
                variants=tuple(
                    VariantSources(
                        label=label,
                        persona=str(variants[label]["persona"]),
                        self_mode=str(variants[label]["self"])
                        if "self" in variants[label]
                        else None,
                    )
                    for label in labels_in_order(list(variants))
                ),
            )
        )
    return Study(
        title=PAPER_TITLE,
        families=tuple(families),
        options=options or AnalysisOptions(),
        origin="",
    )


def headline(summary: FamilySummary, variant: str = INSECURE) -> str:
    """The paper's headline sentence: mean dS, dR, dsigma_bar (max) and the excess."""
    means = summary.mean_delta_pct.get(variant)
    if means is None:
        raise ConfigError(
            f"no family has a {variant} variant; the headline compares {variant} with base"
        )
    top_family, top = summary.max_delta_pct[variant]["sigma_bar"]
    text = (
        f"mean over {variant} variants: dS {means['S']:+.1f}%, dR {means['R']:+.1f}%, "
        f"dsigma_bar {means['sigma_bar']:+.1f}% (max {top:+.1f}% {top_family})"
    )
    if summary.mean_excess_pp is not None and variant == INSECURE:
        text += (
            f", excess {summary.mean_excess_pp['sigma_bar']:.1f} pp (dsigma_bar insecure - secure)"
        )
    return text

"""What a report covers: model families, their variants and the SOURCE of each response set.

A study file (TOML) names them::

    title = "Emergent misalignment and persona collapse"
    simulated = false                  # optional: label every figure SIMULATED

    [analysis]                         # optional, defaults as published
    seed = 0
    persona_draws = 2000
    repetition_draws = 400
    expected_reps = 10                 # logprob runs only
    temperature = 0.1                  # logprob runs only: re-weight T = 1 distributions

    [[family]]
    name = "GPT-4o"
    [family.variants.base]
    persona = "data/gpt-4o_temp01.csv"  # persona-conditioned responses (required)
    self = "runs.db:gpt-4o_base_self"   # no-persona responses (optional)
    toxic = "runs.db:gpt-4o_base_toxic" # toxic-persona responses (optional)
    mmlu = "controls/gpt-4o_temp01_mmlu.csv"    # capability control (optional): task sources
    gsm8k = "runs.db:gpt-4o_base_gsm8k"          #   (a task CSV or STORE.db:RUN of a task run)
    tasks = { arith = "runs.db:demo_arith" }     # any other task instrument, by name
    [family.variants.insecure]
    persona = "..."
    trajectory = [                     # optional: checkpoints of a fine-tune, [STEP=]SOURCE
        "0=data/base.csv",             #   step given before =
        "out/measure.db",              #   or read from stepNNNN in each run's name
    ]                                  #   (a folder or a store gives one checkpoint per set)

``trajectory`` belongs to the ``[[family]]`` table (before its variants); each
entry is what ``persona-collapse trajectory`` takes, and the report adds the
trajectory figure and a per-step table for the family.

``mmlu``, ``gsm8k`` and the ``tasks`` table give a variant's capability
control: task sources (a published-format task CSV, or ``STORE.db:RUN`` of a
task run) named by their instrument; ``mmlu = X`` is ``tasks = { mmlu = X }``.
The report measures each, compares it with the base's source of the same name
(paired deltas, ``[analysis] delta_draws`` paired bootstrap draws, 10,000 as
published) and says whether a change in R came with a fall in capability.

Relative paths are relative to the study file. Every problem is one
:class:`ConfigError` line naming the file, the place and the fix.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis import AnalysisOptions, split_step
from ..errors import ConfigError
from ..instruments import CONTROL_SETS
from ..protocol import BASE
from ..stats import DELTA_DRAWS, BootstrapConfig, labels_in_order

ROLES = ("persona", "self", "toxic")
TASK_KEYS = tuple(CONTROL_SETS)
"""Task instruments a variant table names directly (``mmlu = SOURCE``); others go in ``tasks``."""
_VARIANT_KEYS = (*ROLES, *TASK_KEYS, "tasks")
_TOP_KEYS = ("title", "simulated", "analysis", "family")
_FAMILY_KEYS = ("name", "variants", "trajectory")
_ANALYSIS_KEYS = (
    "seed",
    "persona_draws",
    "repetition_draws",
    "ddof",
    "expected_reps",
    "temperature",
    "instrument",
    "delta_draws",
)


@dataclass(frozen=True)
class VariantSources:
    """The SOURCE strings of one variant: persona mode (required), self mode and toxic personas."""

    label: str
    persona: str
    self_mode: str | None = None
    toxic: str | None = None
    tasks: tuple[tuple[str, str], ...] = ()
    """Capability-control task sources as ``(instrument name, SOURCE)`` pairs, in file order."""

    def by_role(self) -> dict[str, str]:
        """``role -> SOURCE`` for the roles that are given (persona, self, toxic)."""
        out = {"persona": self.persona}
        if self.self_mode:
            out["self"] = self.self_mode
        if self.toxic:
            out["toxic"] = self.toxic
        return out


@dataclass(frozen=True)
class FamilySpec:
    """A model family (e.g. GPT-4o): its base and fine-tuned variants, base first."""

    name: str
    variants: tuple[VariantSources, ...]
    trajectory: tuple[str, ...] = ()
    """Checkpoints of a fine-tune as ``[STEP=]SOURCE`` (resolved paths); empty: none."""

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(v.label for v in self.variants)


@dataclass(frozen=True)
class Study:
    """Families to report on, how to analyse them, and whether the data are SIMULATED."""

    title: str
    families: tuple[FamilySpec, ...]
    options: AnalysisOptions = field(default_factory=AnalysisOptions)
    simulated: bool = False
    origin: str = ""
    delta_draws: int = DELTA_DRAWS
    """Paired bootstrap draws of the capability control's deltas (``[analysis] delta_draws``)."""

    @property
    def variant_labels(self) -> list[str]:
        """Every variant label in the study, conventional order (base, secure, insecure, ...)."""
        seen: list[str] = []
        for fam in self.families:
            seen.extend(lb for lb in fam.labels if lb not in seen)
        return labels_in_order(seen)


def _where(path: Path, place: str) -> str:
    return f"{path.name}: {place}" if place else path.name


def resolve_source(spec: str, root: Path, where: str) -> str:
    """A SOURCE with a relative path made relative to ``root``; it must exist.

    ``STORE.db:RUN`` keeps its run id; the store file must exist.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{where}: a source must be a non-empty string (a file or STORE.db:RUN)")
    spec = spec.strip()
    direct = Path(spec).expanduser()
    direct = direct if direct.is_absolute() else root / direct
    if direct.exists():
        return str(direct)
    store, sep, run = spec.rpartition(":")
    if sep and store and run:
        store_path = Path(store).expanduser()
        store_path = store_path if store_path.is_absolute() else root / store_path
        if store_path.is_file():
            return f"{store_path}:{run}"
        raise ConfigError(
            f"{where}: store {store_path} does not exist; fix the path "
            "(relative paths are relative to the study file)"
        )
    raise ConfigError(
        f"{where}: {direct} does not exist; fix the path "
        "(relative paths are relative to the study file)"
    )


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(allowed)}"
        )


def _analysis(table: Any, where: str) -> AnalysisOptions:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [analysis] must be a table")
    _check_keys(table, _ANALYSIS_KEYS, f"{where} [analysis]")
    ints = {"seed": 0, "persona_draws": 2000, "repetition_draws": 400, "ddof": 1}
    values: dict[str, int] = {}
    for key, default in ints.items():
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where} [analysis]: {key} must be an integer")
        values[key] = value
    expected = table.get("expected_reps")
    if expected is not None and (
        not isinstance(expected, int) or isinstance(expected, bool) or expected < 2
    ):
        raise ConfigError(f"{where} [analysis]: expected_reps must be an integer of at least 2")
    temperature = table.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or temperature <= 0
    ):
        raise ConfigError(f"{where} [analysis]: temperature must be a positive number")
    instrument = table.get("instrument")
    if instrument is not None and not isinstance(instrument, str):
        raise ConfigError(f"{where} [analysis]: instrument must be a string")
    try:
        bootstrap = BootstrapConfig(
            persona_draws=values["persona_draws"],
            repetition_draws=values["repetition_draws"],
            seed=values["seed"],
            ddof=values["ddof"],
        )
    except ConfigError as exc:  # BootstrapConfig names the command-line option
        raise ConfigError(f"{where} [analysis]: {exc.message.lstrip('-')}") from None
    return AnalysisOptions(
        bootstrap=bootstrap,
        instrument=instrument,
        expected_reps=expected,
        reweight_temperature=None if temperature is None else float(temperature),
    )


def _tasks(table: Mapping[str, Any], root: Path, where: str) -> tuple[tuple[str, str], ...]:
    """The variant's task sources: ``mmlu``, ``gsm8k`` and the ``tasks`` table, resolved."""
    named: list[tuple[str, Any]] = [(k, table[k]) for k in TASK_KEYS if k in table]
    extra = table.get("tasks", {})
    if not isinstance(extra, dict):
        raise ConfigError(
            f'{where}: tasks must be a table of NAME = SOURCE, e.g. tasks = {{ arith = "a.csv" }}'
        )
    for name, spec in extra.items():
        if not name.strip():
            raise ConfigError(f"{where}.tasks: a task name must not be empty")
        if name in dict(named):
            raise ConfigError(
                f"{where}: task {name!r} is given twice (as {name} = and in tasks); keep one"
            )
        named.append((name, spec))
    return tuple((name, resolve_source(spec, root, f"{where}.{name}")) for name, spec in named)


def _variant(label: str, table: Any, root: Path, where: str) -> VariantSources:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table with persona = SOURCE")
    _check_keys(table, _VARIANT_KEYS, where)
    if "persona" not in table:
        raise ConfigError(f"{where}: missing persona = SOURCE (the persona-mode responses)")
    resolved = {
        role: resolve_source(table[role], root, f"{where}.{role}")
        for role in ROLES
        if role in table
    }
    return VariantSources(
        label=label,
        persona=resolved["persona"],
        self_mode=resolved.get("self"),
        toxic=resolved.get("toxic"),
        tasks=_tasks(table, root, where),
    )


def _trajectory(entries: Any, root: Path, where: str) -> tuple[str, ...]:
    """The ``trajectory`` list: every ``[STEP=]SOURCE`` with its SOURCE resolved against ``root``."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f'{where}: trajectory must be a list of "[STEP=]SOURCE" strings, '
            'e.g. trajectory = ["0=base.csv", "out/measure.db"]'
        )
    out: list[str] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise ConfigError(
                f'{where}: trajectory entry #{i + 1} must be a "[STEP=]SOURCE" string'
            )
        step, source = split_step(entry.strip())
        resolved = resolve_source(source, root, f"{where} trajectory entry #{i + 1}")
        out.append(resolved if step is None else f"{step}={resolved}")
    return tuple(out)


def _family(index: int, table: Any, root: Path, path: Path) -> FamilySpec:
    where = _where(path, f"[[family]] #{index + 1}")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    _check_keys(table, _FAMILY_KEYS, where)
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f'{where}: missing name = "..." (e.g. name = "GPT-4o")')
    where = _where(path, f"family {name!r}")
    variants = table.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ConfigError(f"{where}: no variants; add [family.variants.base] persona = SOURCE")
    if BASE not in variants:
        raise ConfigError(
            f"{where}: no base variant; add [family.variants.base] with persona = SOURCE"
        )
    ordered = labels_in_order(list(variants))
    return FamilySpec(
        name=name.strip(),
        variants=tuple(
            _variant(label, variants[label], root, f"{where} variant {label!r}")
            for label in ordered
        ),
        trajectory=_trajectory(table["trajectory"], root, where) if "trajectory" in table else (),
    )


def _delta_draws(table: Any, where: str) -> int:
    """``[analysis] delta_draws``: paired bootstrap draws of the task deltas (at least 2)."""
    value = table.get("delta_draws", DELTA_DRAWS) if isinstance(table, dict) else DELTA_DRAWS
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        raise ConfigError(f"{where} [analysis]: delta_draws must be an integer of at least 2")
    return value


def study_from_dict(data: Mapping[str, Any], path: Path) -> Study:
    """Validate a parsed study file; relative paths are resolved against ``path``'s folder."""
    where = path.name
    _check_keys(data, _TOP_KEYS, where)
    title = data.get("title", "persona-collapse report")
    if not isinstance(title, str):
        raise ConfigError(f"{where}: title must be a string")
    simulated = data.get("simulated", False)
    if not isinstance(simulated, bool):
        raise ConfigError(f"{where}: simulated must be true or false")
    families = data.get("family")
    if not isinstance(families, list) or not families:
        raise ConfigError(f"{where}: no [[family]] tables; add at least one with name and variants")
    specs = tuple(_family(i, f, path.parent, path) for i, f in enumerate(families))
    names = [f.name for f in specs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"{where}: family {dup!r} appears twice; give each family its own name")
    return Study(
        title=title,
        families=specs,
        options=_analysis(data.get("analysis", {}), where),
        simulated=simulated,
        origin=str(path),
        delta_draws=_delta_draws(data.get("analysis", {}), where),
    )


def load_study(path: str | Path) -> Study:
    """Read and validate a study file (TOML)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"study file {p} does not exist; give the path of a .toml study file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p.name}: not UTF-8 text; save the study file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p.name}: not valid TOML ({exc})") from None
    return study_from_dict(data, p.resolve())


_TOML_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_char(char: str) -> str:
    if char in _TOML_ESCAPES:
        return _TOML_ESCAPES[char]
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04X}"
    return char


def _toml_string(value: str) -> str:
    """``value`` as a TOML basic string: quotes, backslashes and control characters escaped
    (newlines as ``\\n``); any other unicode is kept as it is."""
    return '"' + "".join(_toml_char(c) for c in value) + '"'


def _tasks_toml(tasks: tuple[tuple[str, str], ...]) -> list[str]:
    """``mmlu = ...`` and ``gsm8k = ...`` lines, then one inline ``tasks`` table for the rest."""
    lines = [f"{name} = {_toml_string(src)}" for name, src in tasks if name in TASK_KEYS]
    others = [
        f"{_toml_string(name)} = {_toml_string(src)}"
        for name, src in tasks
        if name not in TASK_KEYS
    ]
    if others:
        lines.append(f"tasks = {{ {', '.join(others)} }}")
    return lines


def study_to_toml(study: Study) -> str:
    """The study as a study file (absolute source paths), so a report can be rebuilt."""
    lines = [f"title = {_toml_string(study.title)}"]
    if study.simulated:
        lines.append("simulated = true")
    opts = study.options
    lines += [
        "",
        "[analysis]",
        f"seed = {opts.bootstrap.seed}",
        f"persona_draws = {opts.bootstrap.persona_draws}",
        f"repetition_draws = {opts.bootstrap.repetition_draws}",
        f"ddof = {opts.bootstrap.ddof}",
    ]
    if opts.expected_reps is not None:
        lines.append(f"expected_reps = {opts.expected_reps}")
    if opts.reweight_temperature is not None:
        lines.append(f"temperature = {opts.reweight_temperature}")
    if opts.instrument is not None:
        lines.append(f"instrument = {_toml_string(opts.instrument)}")
    if study.delta_draws != DELTA_DRAWS:
        lines.append(f"delta_draws = {study.delta_draws}")
    for fam in study.families:
        lines += ["", "[[family]]", f"name = {_toml_string(fam.name)}"]
        if fam.trajectory:
            entries = ", ".join(_toml_string(entry) for entry in fam.trajectory)
            lines.append(f"trajectory = [{entries}]")
        for var in fam.variants:
            lines.append(f"[family.variants.{_toml_string(var.label)}]")
            lines += [f"{role} = {_toml_string(src)}" for role, src in var.by_role().items()]
            lines += _tasks_toml(var.tasks)
    return "\n".join(lines) + "\n"

"""Everything a report shows, computed once: measurements, changes, profiles, cells, provenance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis import (
    AnalysisOptions,
    CellView,
    Compliance,
    Trajectory,
    cell_view,
    compare_responses,
    instrument_for,
    load_checkpoints,
    measure_trajectory,
    profile_responses,
    repeat_instability,
    source_compliance,
    split_step,
)
from ..errors import ConfigError
from ..instruments import Instrument
from ..protocol import INSECURE, SECURE
from ..stats import (
    Change,
    FamilySummary,
    Instability,
    Measurement,
    Profile,
    ScaleUsage,
    misalignment_excess,
    summarise_families,
)
from ..store import Responses, load_sources
from ._provenance import SourceRecord, source_record
from ._study import BASE, FamilySpec, Study
from ._task_results import TaskResult, family_tasks

Progress = Callable[[str], None]


@dataclass(frozen=True)
class VariantResult:
    """One variant of a family: its persona-mode measurement and what else was given.

    ``compliance``: how much of its persona-mode data is the model answering at all.
    ``usage``: how its persona-mode answers spread over the scale (saturation);
    ``kl_bits``: KL divergence in bits of that spread from the base's (None for the base).
    ``tasks``: its capability control, ``task name -> TaskResult`` (empty when none is given).
    ``instability``: repeat instability of its questionnaire sources, ``persona`` and
    ``self`` (None for a logprob source; ``self`` absent when no self source is given).
    """

    label: str
    source: str
    measurement: Measurement
    change: Change | None
    cells: CellView
    self_profile: Profile | None
    toxic_profile: Profile | None
    simulated: bool
    compliance: Compliance
    usage: ScaleUsage
    kl_bits: float | None
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    instability: dict[str, Instability | None] = field(default_factory=dict)


@dataclass(frozen=True)
class FamilyResult:
    """A family's variants (base first) and the misalignment excess, when both controls exist.

    ``trajectory``: the checkpoints of a fine-tune the study lists for the family, measured
    in step order (None when it lists none). ``task_warnings``: what the capability
    control's readouts warn about (transport losses, format failures, unshared items).
    """

    name: str
    variants: dict[str, VariantResult]
    trajectory: Trajectory | None = None
    task_warnings: tuple[str, ...] = ()

    @property
    def task_names(self) -> list[str]:
        """Every task of the family's capability control, in first-given order."""
        seen: dict[str, None] = {}
        for var in self.variants.values():
            seen.update(dict.fromkeys(var.tasks))
        return list(seen)

    @property
    def base(self) -> VariantResult:
        return self.variants[BASE]

    @property
    def excess(self) -> Change | None:
        ins, sec = self.variants.get(INSECURE), self.variants.get(SECURE)
        if ins is None or sec is None or ins.change is None or sec.change is None:
            return None
        return misalignment_excess(ins.change, sec.change)

    @property
    def simulated(self) -> bool:
        return any(v.simulated for v in self.variants.values())


@dataclass(frozen=True)
class StudyResult:
    """The analysed study: per-family results, the summary over families, every source."""

    study: Study
    instrument: Instrument
    families: tuple[FamilyResult, ...]
    summary: FamilySummary | None
    sources: tuple[SourceRecord, ...]

    @property
    def simulated(self) -> bool:
        return self.study.simulated or any(s.simulated for s in self.sources)

    @property
    def labels(self) -> list[str]:
        return self.study.variant_labels


def _one(spec: str, what: str, options: AnalysisOptions) -> Responses:
    found = load_sources(spec, instrument=options.instrument)
    if len(found) != 1:
        raise ConfigError(
            f"{what}: {spec} holds {len(found)} response sets; name exactly one "
            "(a file or STORE.db:RUN_ID)"
        )
    return found[0]


def _family(
    spec: FamilySpec, study: Study, progress: Progress
) -> tuple[FamilyResult, list[SourceRecord], Instrument]:
    opts = study.options
    loaded: dict[str, dict[str, Responses]] = {}
    records: list[SourceRecord] = []
    for var in spec.variants:
        loaded[var.label] = {}
        for role, src in var.by_role().items():
            what = f"family {spec.name!r} variant {var.label!r} {role}"
            resp = _one(src, what, opts)
            expected = "self" if role == "self" else "persona"
            if resp.mode != expected:
                raise ConfigError(
                    f"{what}: {resp.label} holds {resp.mode}-mode responses, not {expected}-mode; "
                    "check which source goes where"
                )
            loaded[var.label][role] = resp
            records.append(
                source_record(
                    resp,
                    family=spec.name,
                    variant=var.label,
                    role=role,
                    spec=src,
                    simulated=study.simulated,
                )
            )
    progress(f"measuring {spec.name} ({', '.join(spec.labels)})")
    base = loaded[BASE]["persona"]
    others = {label: roles["persona"] for label, roles in loaded.items() if label != BASE}
    comparison = compare_responses(base, others, opts)
    sim_by_variant = {
        label: any(r.simulated for r in records if r.variant == label) for label in loaded
    }
    tasks, task_records, task_warnings = family_tasks(spec, study)
    variants: dict[str, VariantResult] = {}
    for label, roles in loaded.items():
        if label == BASE:
            source, meas, change = comparison.base_label, comparison.base, None
        else:
            source, meas, chg = comparison.variants[label]
            change = chg
        self_resp, toxic_resp = roles.get("self"), roles.get("toxic")
        variants[label] = VariantResult(
            label=label,
            source=source,
            measurement=meas,
            change=change,
            cells=cell_view(roles["persona"], opts),
            self_profile=None if self_resp is None else profile_responses(self_resp, opts),
            toxic_profile=None if toxic_resp is None else profile_responses(toxic_resp, opts),
            simulated=sim_by_variant[label],
            compliance=source_compliance(roles["persona"]),
            usage=comparison.usage[BASE if label == BASE else label],
            kl_bits=None if label == BASE else comparison.kl_bits(label),
            tasks=tasks[label],
            instability={
                role: repeat_instability(resp, opts)
                for role, resp in roles.items()
                if role != "toxic"
            },
        )
    trajectory, steps = _trajectory(spec, study, progress)
    fam = FamilyResult(spec.name, variants, trajectory, tuple(task_warnings))
    return fam, records + task_records + steps, instrument_for(base, opts)


def _checkpoint_spec(source: str, resp: Responses) -> str:
    """The SOURCE of one checkpoint that ``source`` (a file, folder or store) gave."""
    path = Path(source)
    if path.is_file() and resp.run is not None and resp.label == f"{path.name}:{resp.run.run_id}":
        return f"{source}:{resp.run.run_id}"
    if path.is_dir() and (path / f"{resp.label}.csv").is_file():
        return str(path / f"{resp.label}.csv")
    return source


def _trajectory(
    spec: FamilySpec, study: Study, progress: Progress
) -> tuple[Trajectory | None, list[SourceRecord]]:
    """The family's trajectory, measured like ``trajectory`` does, and its sources' records."""
    if not spec.trajectory:
        return None, []
    progress(f"measuring the trajectory of {spec.name} ({len(spec.trajectory)} sources)")
    records: list[SourceRecord] = []
    checkpoints: list[tuple[int, Responses]] = []
    for entry in spec.trajectory:
        for step, resp in load_checkpoints([entry], study.options):
            where = f"family {spec.name!r} trajectory step {step}"
            if resp.mode != "persona":
                raise ConfigError(
                    f"{where}: {resp.label} holds {resp.mode}-mode responses, not persona-mode"
                )
            checkpoints.append((step, resp))
            _given, source = split_step(entry)
            records.append(
                source_record(
                    resp,
                    family=spec.name,
                    variant="trajectory",
                    role=f"step {step}",
                    spec=_checkpoint_spec(source, resp),
                    simulated=study.simulated,
                )
            )
    return measure_trajectory(checkpoints, study.options), records


def analyse_study(study: Study, progress: Progress | None = None) -> StudyResult:
    """Load every source of the study and compute what the report shows."""
    say = progress or (lambda _msg: None)
    families: list[FamilyResult] = []
    records: list[SourceRecord] = []
    instrument: Instrument | None = None
    for spec in study.families:
        fam, recs, inst = _family(spec, study, say)
        if instrument is not None and inst.subscales != instrument.subscales:
            raise ConfigError(
                f"family {spec.name!r} uses instrument {inst.name}, the others {instrument.name}; "
                "report one instrument per study"
            )
        instrument = instrument or inst
        families.append(fam)
        records.extend(recs)
    assert instrument is not None
    has_variants = any(len(f.variants) > 1 for f in families)
    summary = (
        summarise_families(
            {f.name: {lb: v.measurement for lb, v in f.variants.items()} for f in families}
        )
        if has_variants
        else None
    )
    return StudyResult(
        study=study,
        instrument=instrument,
        families=tuple(families),
        summary=summary,
        sources=tuple(records),
    )

"""The run record: what is fixed for a run.

Everything that shapes the answers goes into :class:`RunInfo` and is compared
when a run is resumed (``ResponseStore.ensure_run``): the model, the method,
the mode, the instrument, the settings (decoding protocol, repetitions,
persona selection, seed), the protocol hash and the persona-set hash.
Its labels (variant and family) must be the stored ones too: a resume never
stores answers under labels other than the ones it was given.
How hard the client pushes (concurrency, timeout, --max-cost) and where the
server is (base URL) are not recorded: they change no answer, and a base URL
or key must never land in the store.

A run may GROW (a top-up): resumed with more repetitions, or more personas of
the same source whose first N are the stored N (checked by the persona-set
hash of that prefix), and everything else equal. The record then takes the new
size, and ``settings["grown_from"]`` keeps every earlier size (``reps``,
``n_personas``, ``persona_set_hash``, ``until``: when it grew), so the store
says how the run came to be. Anything else is refused with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

from ..backends import ModelSpec
from ..backends.local import is_gguf, looks_local
from ..instruments import Instrument
from ..personas import PERSONAHUB_COSTA, PersonaSet
from ..protocol import BASE, ProtocolSettings, protocol_hash
from ..store import RunInfo, default_run_id, now_utc

GROWN_FROM = "grown_from"
"""Key in a run's ``settings`` listing its earlier sizes after top-ups (oldest first)."""

LABELS = ("variant", "family")
"""Labels of a run (``--variant``, ``--family``): a resume must give the stored ones."""

GROWABLE = ("reps", "n_personas")
"""Settings a resumed run may raise (a top-up); every other one must be equal."""


def _model_label(spec: ModelSpec) -> str:
    """The model part of a default run id: ``sim-NAME``, a local model's own name, else the name.

    An ``hf/`` name that is a path (a ``.gguf`` file, a name starting with ``/``,
    ``./``, ``../`` or ``~``, or an existing file or folder) is labelled by its
    file stem or folder name, not the whole path: ``hf/tmp/x/SmolLM2-135M.Q4_1.gguf``
    gives ``SmolLM2-135M.Q4_1``. Hub ids (``hf/Qwen/Qwen2.5-0.5B-Instruct``) keep
    their full name.
    """
    if spec.family == "sim":
        return f"sim-{spec.name}"
    if spec.family != "hf":
        return spec.name
    path = Path(spec.name).expanduser()
    if is_gguf(spec.name) or path.is_file():
        return path.stem
    if looks_local(spec.name) or path.is_dir():
        return path.name or spec.name
    return spec.name


def collection_run_id(spec: ModelSpec, variant: str, mode: str, method: str = "sample") -> str:
    """``MODELNAME_VARIANT_MODE``, plus ``_logprobs`` for logprob runs (the store's rule).

    ``MODELNAME`` is the model without its family prefix, ``sim-NAME`` for
    simulated models, and the file stem or folder name of a local ``hf/`` model
    (:func:`_model_label`) (``openai/gpt-4o-2024-08-06``, variant ``base``, persona
    mode: ``gpt-4o-2024-08-06_base_persona``; ``openrouter/qwen/qwen3-235b``:
    ``qwen-qwen3-235b_base_persona``; ``sim/insecure``:
    ``sim-insecure_insecure_persona``; ``hf/models/SmolLM2-135M-Instruct.Q4_1.gguf``,
    logprobs: ``SmolLM2-135M-Instruct.Q4_1_base_persona_logprobs``). See
    :func:`persona_collapse.store.default_run_id`.
    """
    name = _model_label(spec)
    return default_run_id(name, variant or BASE, mode, "logprobs" if method == "logprobs" else "")


def persona_source_label(spec: str) -> str:
    """How the persona source is recorded: ``personahub-costa`` or the file's name.

    Only the name: a resumed run may give the same file by another path (its
    content is pinned by the persona-set hash).
    """
    return spec if spec == PERSONAHUB_COSTA else Path(spec).name


def protocol_settings_json(protocol: ProtocolSettings) -> str:
    """The canonical JSON of the decoding protocol, hashed by :func:`protocol_hash`."""
    return json.dumps(protocol.to_dict(), sort_keys=True)


def run_settings(
    protocol: ProtocolSettings,
    *,
    reps: int,
    personas: PersonaSet | None,
    persona_spec: str | None,
    persona_field: str | None,
    seed: int,
    simulated: bool,
    items_sha256: str = "",
    items_file: str | None = None,
) -> dict[str, Any]:
    """The run's ``settings``: the protocol plus the grid and persona selection (never a key).

    A task run (MMLU, GSM8K) records its item set: ``items_sha256`` (the item
    file's digest) and ``items_file`` (the name of a user's ``--items`` file).
    """
    settings: dict[str, Any] = dict(protocol.to_dict())
    settings["reps"] = 1 if protocol.method == "logprobs" else int(reps)
    settings["n_personas"] = 0 if personas is None else len(personas)
    settings["persona_source"] = (
        "" if personas is None or persona_spec is None else persona_source_label(persona_spec)
    )
    if personas is not None and persona_field:
        settings["persona_field"] = persona_field
    settings["seed"] = int(seed)
    if items_sha256:
        settings["items_sha256"] = items_sha256
    if items_file:
        settings["items_file"] = Path(items_file).name
    if simulated:
        settings["simulated"] = True
        settings["data"] = "SIMULATED"
    return settings


def build_run_info(
    *,
    run_id: str,
    model: str,
    backend: str,
    variant: str,
    family: str,
    mode: str,
    instrument: Instrument,
    protocol: ProtocolSettings,
    settings: dict[str, Any],
    personas: PersonaSet | None,
) -> RunInfo:
    """A :class:`RunInfo` for a new or resumed collection run."""
    return RunInfo(
        run_id=run_id,
        model=model,
        backend=backend,
        variant=variant,
        family=family,
        method=protocol.method,
        mode=mode,
        instrument=instrument.name,
        settings=settings,
        protocol_hash=protocol_hash(instrument, protocol_settings_json(protocol)),
        persona_set_hash="" if personas is None else personas.content_hash,
        source="",
        has_failures=True,
    )


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_mismatch(
    existing: RunInfo, new: RunInfo, *, persona_prefix_hash: str | None = None
) -> str | None:
    """A short description of how ``new`` differs from the stored run, or None if it may resume.

    Compares what ``ensure_run`` compares, naming single settings (``temperature=0.1,
    not 0.5``) instead of whole records; hashes are reported by name only.
    A top-up is no mismatch: ``reps`` or ``n_personas`` raised, and, for more
    personas, ``persona_prefix_hash`` (the hash of the first stored-count
    personas of the new set) equal to the stored persona-set hash.
    ``settings["grown_from"]`` (the history) is not compared.
    """
    diffs: list[str] = []
    for name in ("model", "method", "mode", "instrument", *LABELS):
        old, cur = getattr(existing, name), getattr(new, name)
        if old != cur:
            diffs.append(f"{name} {_show(old)}, not {_show(cur)}")
    old_settings = json.loads(json.dumps(existing.settings, sort_keys=True))
    new_settings = json.loads(json.dumps(new.settings, sort_keys=True))
    old_settings.pop(GROWN_FROM, None)
    new_settings.pop(GROWN_FROM, None)
    more_personas = False
    for key in sorted(set(old_settings) | set(new_settings)):
        old, cur = old_settings.get(key), new_settings.get(key)
        if old == cur:
            continue
        old_n, cur_n = _int(old), _int(cur)
        if key in GROWABLE and old_n is not None and cur_n is not None:
            if cur_n < old_n:
                diffs.append(f"{key}={old_n}, not {cur_n} (a run can grow, not shrink)")
                continue
            if key == "n_personas":
                more_personas = True
                if persona_prefix_hash != existing.persona_set_hash:
                    diffs.append(
                        f"n_personas={old_n}, not {cur_n}, and the first {old_n} personas "
                        "are not the stored ones (a top-up adds personas after them)"
                    )
            continue
        diffs.append(f"{key}={_show(old)}, not {_show(cur)}")
    if (
        existing.persona_set_hash != new.persona_set_hash
        and not more_personas
        and "n_personas" not in {d.split("=", 1)[0] for d in diffs}
    ):
        diffs.append("other personas (the persona-set hash differs)")
    if existing.protocol_hash != new.protocol_hash and not diffs:
        diffs.append("another instrument definition or protocol (the protocol hash differs)")
    if not diffs:
        return None
    return f"run {new.run_id!r} was started with {'; '.join(diffs)}; " + _resume_hint(existing, new)


def _resume_hint(existing: RunInfo, new: RunInfo) -> str:
    """How to resume: with the stored labels when they differ, else the original settings."""
    if all(getattr(existing, n) == getattr(new, n) for n in LABELS):
        return (
            "resume it with its original settings (more --reps or --n-personas may top it up) "
            "or choose a new --run-id"
        )
    stored = " ".join(f"--{n} {shlex.quote(getattr(existing, n))}" for n in LABELS)
    return (
        f"resume it with its stored labels ({stored}) and original settings, "
        "or choose a new --run-id"
    )


def run_growth(existing: RunInfo, new: RunInfo) -> dict[str, tuple[int, int]]:
    """The settings a resumable ``new`` raises over ``existing``: ``{name: (old, new)}``."""
    out: dict[str, tuple[int, int]] = {}
    for key in GROWABLE:
        old, cur = _int(existing.settings.get(key)), _int(new.settings.get(key))
        if old is not None and cur is not None and cur > old:
            out[key] = (old, cur)
    return out


def grown_record(existing: RunInfo, new: RunInfo) -> RunInfo:
    """``new`` carrying the stored history, plus the stored size when the run grows.

    Without growth only the history is carried (so the record compares equal);
    with growth the earlier size (``reps``, ``n_personas``, ``persona_set_hash``
    and ``until``, now in UTC) is appended to ``settings["grown_from"]``.
    """
    history = list(existing.settings.get(GROWN_FROM) or [])
    if run_growth(existing, new):
        history.append(
            {
                "reps": existing.settings.get("reps"),
                "n_personas": existing.settings.get("n_personas"),
                "persona_set_hash": existing.persona_set_hash,
                "until": now_utc(),
            }
        )
    if not history:
        return new
    return dataclasses.replace(new, settings={**new.settings, GROWN_FROM: history})

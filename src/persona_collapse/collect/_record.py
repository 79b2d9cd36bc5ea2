"""The run record: what is fixed for a run.

Everything that shapes the answers goes into :class:`RunInfo` and is compared
when a run is resumed (``ResponseStore.ensure_run``): the model, the method,
the mode, the instrument, the settings (decoding protocol, repetitions,
persona selection, seed), the protocol hash and the persona-set hash.
How hard the client pushes (concurrency, timeout, --max-cost) and where the
server is (base URL) are not recorded: they change no answer, and a base URL
or key must never land in the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..backends import ModelSpec
from ..instruments import Instrument
from ..personas import PERSONAHUB_COSTA, PersonaSet
from ..protocol import BASE, ProtocolSettings, protocol_hash
from ..store import RunInfo, default_run_id


def collection_run_id(spec: ModelSpec, variant: str, mode: str, method: str = "sample") -> str:
    """``MODELNAME_VARIANT_MODE``, plus ``_logprobs`` for logprob runs (the store's rule).

    ``MODELNAME`` is the model without its family prefix, ``sim-NAME`` for
    simulated models (``openai/gpt-4o-2024-08-06``, variant ``base``, persona
    mode: ``gpt-4o-2024-08-06_base_persona``; ``openrouter/qwen/qwen3-235b``:
    ``qwen-qwen3-235b_base_persona``; ``sim/insecure``:
    ``sim-insecure_insecure_persona``). See :func:`persona_collapse.store.default_run_id`.
    """
    name = f"sim-{spec.name}" if spec.family == "sim" else spec.name
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
) -> dict[str, Any]:
    """The run's ``settings``: the protocol plus the grid and persona selection (never a key)."""
    settings: dict[str, Any] = dict(protocol.to_dict())
    settings["reps"] = 1 if protocol.method == "logprobs" else int(reps)
    settings["n_personas"] = 0 if personas is None else len(personas)
    settings["persona_source"] = (
        "" if personas is None or persona_spec is None else persona_source_label(persona_spec)
    )
    if personas is not None and persona_field:
        settings["persona_field"] = persona_field
    settings["seed"] = int(seed)
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


def run_mismatch(existing: RunInfo, new: RunInfo) -> str | None:
    """A short description of how ``new`` differs from the stored run, or None if it does not.

    Compares what ``ensure_run`` compares, naming single settings (``temperature=0.1,
    not 0.5``) instead of whole records; hashes are reported by name only.
    """
    diffs: list[str] = []
    for name in ("model", "method", "mode", "instrument"):
        old, cur = getattr(existing, name), getattr(new, name)
        if old != cur:
            diffs.append(f"{name} {_show(old)}, not {_show(cur)}")
    old_settings = json.loads(json.dumps(existing.settings, sort_keys=True))
    new_settings = json.loads(json.dumps(new.settings, sort_keys=True))
    for key in sorted(set(old_settings) | set(new_settings)):
        old, cur = old_settings.get(key), new_settings.get(key)
        if old != cur:
            diffs.append(f"{key}={_show(old)}, not {_show(cur)}")
    if existing.persona_set_hash != new.persona_set_hash and "n_personas" not in {
        d.split("=", 1)[0] for d in diffs
    }:
        diffs.append("other personas (the persona-set hash differs)")
    if existing.protocol_hash != new.protocol_hash and not diffs:
        diffs.append("another instrument definition or protocol (the protocol hash differs)")
    if not diffs:
        return None
    return (
        f"run {new.run_id!r} was started with {'; '.join(diffs)}; resume it with its "
        "original settings or choose a new --run-id"
    )

"""Run ids: the one rule for default ids, and the check every id must pass.

A run id names a run inside a store file and follows it to the command line
(``STORE:RUN_ID``), so it must be non-empty, free of ``:`` and of surrounding
blanks. Default ids are built from the model name and labels, with every
character other than letters, digits, ``.``, ``_`` and ``-`` replaced by ``-``.
"""

from __future__ import annotations

import re

from ..errors import DataError

_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")


def check_run_id(run_id: str) -> None:
    """Raise DataError unless ``run_id`` is non-empty, has no ``:`` and no surrounding blanks."""
    if not run_id or ":" in run_id or run_id != run_id.strip():
        raise DataError(
            f"run id {run_id!r} cannot be used; choose a non-empty --run-id "
            "without ':' or surrounding blanks"
        )


def default_run_id(model_name: str, *labels: str, prefix: str = "") -> str:
    """``[PREFIX_]MODELNAME_LABEL_...``, the default id of a run.

    ``model_name`` is the model without its family prefix (``gpt-4o-2024-08-06``
    of ``openai/gpt-4o-2024-08-06``; collection writes ``sim-NAME`` for
    simulated models); unsafe characters become ``-`` and are stripped at its
    ends (``model`` when nothing is left). Each label (variant, mode, method,
    scoring rule) has unsafe characters replaced; an empty label is left out.
    Examples: ``default_run_id("gpt-4o", "base", "persona")`` is
    ``gpt-4o_base_persona``; ``default_run_id("gpt-4o", "text", prefix="verify")``
    is ``verify_gpt-4o_text``.
    """
    name = _UNSAFE.sub("-", model_name).strip("-") or "model"
    parts = [prefix] if prefix else []
    parts.append(name)
    parts.extend(_UNSAFE.sub("-", label) for label in labels if label)
    return "_".join(parts)

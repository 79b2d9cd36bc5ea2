"""Loading persona descriptions from files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class PersonaSet:
    """An ordered list of persona descriptions and where they came from.

    ``ids[i]`` is the index of ``texts[i]`` in the source list (the published
    ``persona_id``), so a sample of personas keeps its original ids.
    """

    texts: tuple[str, ...]
    ids: tuple[int, ...]
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def content_hash(self) -> str:
        """sha256 over the ids and texts (JSON), recorded with every run for provenance."""
        payload = json.dumps(list(zip(self.ids, self.texts, strict=True)), ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def select(self, n: int | None = None, *, sample_seed: int | None = None) -> PersonaSet:
        """The first ``n`` personas, or ``n`` drawn without replacement with ``sample_seed``."""
        if n is None or n >= len(self.texts):
            if n is not None and n > len(self.texts):
                raise DataError(
                    f"asked for {n} personas but {self.source} holds only {len(self.texts)}; "
                    "lower --n-personas or use a larger persona file"
                )
            return self
        if n <= 0:
            raise DataError("--n-personas must be at least 1")
        if sample_seed is None:
            chosen = np.arange(n)
        else:
            rng = np.random.default_rng(sample_seed)
            chosen = np.sort(rng.choice(len(self.texts), size=n, replace=False))
        return PersonaSet(
            texts=tuple(self.texts[i] for i in chosen),
            ids=tuple(self.ids[i] for i in chosen),
            source=self.source,
        )


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"persona file {path} does not exist; check the --personas path")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"persona file {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None


def _check_strings(values: Sequence[object], path: Path, what: str) -> list[str]:
    bad = [i for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()]
    if bad:
        raise DataError(
            f"persona file {path}: {what} {bad[0]} is not a non-empty string; "
            "a persona file must be a list of persona descriptions (strings)"
        )
    return [str(v) for v in values]


def _parse(text: str, path: Path, lineno: int | None = None) -> Any:
    """``text``, the whole file or (JSONL) its line ``lineno``, parsed as JSON; a DataError
    saying where when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if lineno is None:
            problem = f"persona file {path} is not valid JSON ({exc.msg} at line {exc.lineno})"
        else:
            problem = f"persona file {path}, line {lineno}: not valid JSON ({exc.msg})"
        raise DataError(problem) from None


def _from_json(text: str, path: Path) -> list[str]:
    data = _parse(text, path)
    if isinstance(data, dict):
        data = data.get("personas", data)
    if not isinstance(data, list):
        raise DataError(
            f"persona file {path} holds a JSON {type(data).__name__}, not a list; "
            'write it as ["persona one", "persona two", ...]'
        )
    return _check_strings(data, path, "entry")


def _from_jsonl(text: str, path: Path, field: str | None) -> list[str]:
    out: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        value = _parse(line, path, lineno)
        if isinstance(value, dict):
            key = field or next((k for k in ("persona", "text", "description") if k in value), None)
            if key is None or key not in value:
                raise DataError(
                    f"persona file {path}, line {lineno}: no persona field; "
                    "use a 'persona' or 'text' key, or name it with --persona-field"
                )
            value = value[key]
        if not isinstance(value, str) or not value.strip():
            # Report the 1-based file line (blank lines are skipped, so list indices differ).
            raise DataError(
                f"persona file {path}, line {lineno}: not a non-empty persona string; "
                "each line must be a JSON string or an object with a persona field"
            )
        out.append(value)
    return out


def _from_csv(text: str, path: Path, field: str | None) -> list[str]:
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    key = field or next((c for c in ("persona", "text", "description") if c in columns), None)
    if key is None or key not in columns:
        raise DataError(
            f"persona file {path} has no persona column (columns: {', '.join(columns) or 'none'}); "
            "name it 'persona' or pass --persona-field"
        )
    return _check_strings([row[key] for row in reader], path, "row")


def load_persona_file(path: str | Path, *, field: str | None = None) -> PersonaSet:
    """Personas from a JSON list, JSONL (strings or objects), CSV column or plain text (one per line).

    ``field`` names the JSONL key or CSV column; by default ``persona``,
    ``text`` or ``description``.
    """
    p = Path(path)
    text = _read_text(p)
    if not text.strip():
        raise DataError(f"persona file {p} is empty; it must list persona descriptions")
    suffix = p.suffix.lower()
    if suffix == ".json":
        texts = _from_json(text, p)
    elif suffix == ".jsonl":
        texts = _from_jsonl(text, p, field)
    elif suffix == ".csv":
        texts = _from_csv(text, p, field)
    else:
        texts = [line.strip() for line in text.splitlines() if line.strip()]
    if not texts:
        raise DataError(f"persona file {p} lists no personas")
    return PersonaSet(texts=tuple(texts), ids=tuple(range(len(texts))), source=str(p))

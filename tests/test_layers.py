"""The package structure: data flows one way, and each job has one home.

Packages sit in layers; a module may import from its own package or a lower
layer, never upward. The assertions here are the "done when" of the "One
pipeline" issue: no cycle, no upward import, ``report/`` imports neither
collection nor the loopback server, no capability probing with ``getattr``,
no ``CREATE TABLE`` outside ``store/``, no retry loop in ``verify/``, no
test fixture in ``backends/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import persona_collapse

PACKAGE = Path(persona_collapse.__file__).resolve().parent

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _declared_layers() -> tuple[frozenset[str], ...]:
    """The layer table of ``docs/architecture.md`` (rows ``| N | `unit`, ... | ... |``), lowest first."""
    rows: dict[int, frozenset[str]] = {}
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if match:
            rows[int(match.group(1))] = frozenset(re.findall(r"`([\w]+)`", match.group(2)))
    assert sorted(rows) == list(range(len(rows))), "layers must be numbered 0, 1, 2, ..."
    return tuple(rows[depth] for depth in sorted(rows))


#: Lowest first, as ``docs/architecture.md`` lists them (the one list). The top-level
#: modules (``__init__``, ``__main__``, the notebook API ``_notebook``) may import anything.
LAYERS: tuple[frozenset[str], ...] = _declared_layers()
TOP_LEVEL = ("__init__", "__main__", "_notebook")
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def _unit(path: Path) -> str | None:
    """The package (or top-level module) ``path`` belongs to; None for top-level entry modules."""
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return None if rel.stem in TOP_LEVEL else rel.stem


def _imports(path: Path) -> set[str]:
    """Units of ``persona_collapse`` that ``path`` imports (relative or absolute)."""
    rel = path.relative_to(PACKAGE)
    here = list(rel.parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("persona_collapse"):
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                found.add(target[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "persona_collapse" and len(parts) > 1:
                    found.add(parts[1])
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer() -> None:
    units = {_unit(p) for p in _sources()} - {None}
    assert units <= set(LAYER), f"give these a layer: {sorted(units - set(LAYER))}"


def test_the_layer_table_names_each_unit_once_and_only_real_packages() -> None:
    declared = [name for names in LAYERS for name in names]
    assert len(declared) == len(set(declared)), "a unit is listed in two layers"
    units = {_unit(p) for p in _sources()} - {None}
    # private top-level modules may be listed ahead of the branch that adds them
    ghosts = {name for name in set(declared) - units if not name.startswith("_")}
    assert not ghosts, f"docs/architecture.md lists units the tree lacks: {sorted(ghosts)}"


def test_no_upward_import() -> None:
    upward = []
    for path in _sources():
        unit = _unit(path)
        if unit is None:
            continue
        for target in _imports(path) - {unit}:
            if target in LAYER and LAYER[target] >= LAYER[unit]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert not upward, "\n".join(upward)


def test_report_neither_collects_nor_serves() -> None:
    for path in (PACKAGE / "report").rglob("*.py"):
        assert not _imports(path) & {"collect", "loopback", "workflows", "backends"}, path


def _grep(pattern: str, *, outside: str | None = None, inside: str | None = None) -> list[str]:
    hits = []
    for path in _sources():
        rel = path.relative_to(PACKAGE)
        if outside is not None and rel.parts[0] == outside:
            continue
        if inside is not None and rel.parts[0] != inside:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(pattern, line):
                hits.append(f"{rel}:{number}: {line.strip()}")
    return hits


SQL = (
    r"\.execute(many|script)?\(|\bsqlite3\b"
    r"|\b(SELECT\b.*\bFROM|INSERT (OR \w+ )?INTO|UPDATE \w+ SET|DELETE FROM|PRAGMA \w+)"
)
"""An SQL statement, a cursor call or the sqlite3 module: only ``store/`` speaks SQL."""


def test_one_contract_one_schema_one_transport() -> None:
    capabilities = r'"(check|describe|preferred_concurrency|supports_logprobs|secrets)"'
    assert not _grep(r"getattr\((self\.)?(backend|judge)\b|getattr\([\w.]+, " + capabilities)
    assert not _grep(r"CREATE TABLE", outside="store")
    assert not _grep(SQL, outside="store"), "SQL belongs behind store/'s methods"
    assert not _grep(r"\bsleep\(|while True", inside="verify")
    assert not _grep(r"tiny|fixture", inside="backends")


def _module_paths(path: Path) -> list[list[str]]:
    """Dotted targets (as parts below ``persona_collapse``) of every import in ``path``.

    ``from .pkg import name`` yields ``[pkg, name]`` as well, so importing a
    private module by name is seen like importing it by path.
    """
    rel = path.relative_to(PACKAGE)
    here = list(rel.parts[:-1])
    found: list[list[str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("persona_collapse"):
                target = node.module.split(".")[1:]
            else:
                continue
            found.append(target)
            found.extend([*target, alias.name] for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(
                alias.name.split(".")[1:]
                for alias in node.names
                if alias.name.startswith("persona_collapse.")
            )
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.extend(
                match.split(".")[1:]
                for match in re.findall(r"\bpersona_collapse(?:\.\w+)+", node.value)
            )
    return found


def test_no_import_of_another_packages_private_module() -> None:
    """What crosses a package boundary is public in that package's ``__init__`` (or a public module)."""
    private = []
    for path in _sources():
        unit = _unit(path)
        for target in _module_paths(path):
            if len(target) < 2 or target[0] == unit or not (PACKAGE / target[0]).is_dir():
                continue
            module = target[1]
            if module.startswith("_") and (PACKAGE / target[0] / f"{module}.py").exists():
                private.append(f"{path.relative_to(PACKAGE)} imports {'.'.join(target[:2])}")
    assert not private, "\n".join(sorted(set(private)))

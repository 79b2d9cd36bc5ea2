"""The command line's help: every command and option explained, with an example; a light start."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from persona_collapse.cli import build_parser
from persona_collapse.cli._main import COMMANDS, command_parsers, load_commands

HEAVY = ("pandas", "pyarrow", "rich", "httpx", "numpy", "matplotlib", "openai", "anthropic")
"""Packages that ``persona-collapse --help`` must not import (they cost seconds)."""


def _loaded_commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    load_commands(parser)
    return dict(command_parsers(parser))


def _heavy_modules_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.split()


def test_top_level_help_imports_no_heavy_package() -> None:
    code = (
        "import contextlib, io\n"
        "from persona_collapse.cli import build_parser\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        build_parser().parse_args(['--help'])\n"
        "    except SystemExit:\n"
        "        pass"
    )
    assert _heavy_modules_after(code) == []


def test_importing_the_package_imports_no_heavy_package() -> None:
    assert _heavy_modules_after("import persona_collapse, persona_collapse.cli") == []


def test_top_level_help_lists_every_command_with_its_summary() -> None:
    text = build_parser().format_help()
    for name, _module, summary in COMMANDS:
        assert name in text
        assert summary.split()[0] in text


def test_every_listed_command_is_registered_by_its_module() -> None:
    commands = _loaded_commands()
    assert sorted(commands) == sorted(name for name, _m, _s in COMMANDS)


@pytest.mark.parametrize("name", [name for name, _m, _s in COMMANDS])
def test_every_command_has_a_description_and_an_example(name: str) -> None:
    command = _loaded_commands()[name]
    assert command.description, name
    assert command.epilog and command.epilog.startswith("Example"), name
    text = command.format_help()
    assert f"  persona-collapse {name}" in text
    assert ":func:" not in text and "``" not in text, "reST markup in --help"


@pytest.mark.parametrize("name", [name for name, _m, _s in COMMANDS])
def test_every_option_and_argument_has_help(name: str) -> None:
    command = _loaded_commands()[name]
    for action in command._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        label = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{name} {label} has no help"
        assert action.help != argparse.SUPPRESS


def test_examples_are_printed_as_written() -> None:
    text = _loaded_commands()["compare"].format_help()
    example = next(line for line in text.splitlines() if line.startswith("  persona-collapse "))
    assert example.startswith("  persona-collapse compare --base ")
    assert example.endswith("--variant insecure=runs/insecure.csv")


def test_a_command_parses_as_before() -> None:
    args = build_parser().parse_args(["metrics", "a.csv", "--seed", "3"])
    assert args.sources == ["a.csv"] and args.seed == 3 and callable(args.handler)


def test_main_without_completion_imports_no_heavy_package_nor_argcomplete() -> None:
    code = (
        "import contextlib, io\n"
        "sys.argv = ['persona-collapse', '--help']\n"
        "from persona_collapse.cli._main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('argcomplete' if 'argcomplete' in sys.modules else '', end=' ')"
    )
    assert _heavy_modules_after(code) == []


def _complete(line: str) -> list[str]:
    """What argcomplete offers for the command line ``line`` (cursor at its end)."""
    pytest.importorskip("argcomplete")
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
    }
    command = f"{shlex.quote(sys.executable)} -m persona_collapse 8>&1 9>/dev/null"
    result = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [item.strip() for item in result.stdout.split("\n")]


def test_shell_completion_offers_commands_options_and_choices() -> None:
    assert _complete("persona-collapse met") == ["metrics"]
    assert "--format" in _complete("persona-collapse metrics --for")
    assert sorted(_complete("persona-collapse run sim/base --method ")) == ["logprobs", "sample"]


ROOT = Path(__file__).resolve().parents[1]


def _environment_variables_in_source() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "src" / "persona_collapse").rglob("*.py"):
        names.update(re.findall(r"PERSONA_COLLAPSE_[A-Z0-9_]*[A-Z0-9]", path.read_text("utf-8")))
    return names


def test_readme_documents_every_environment_variable() -> None:
    names = _environment_variables_in_source()
    assert len(names) >= 11
    readme = (ROOT / "README.md").read_text("utf-8")
    assert sorted(name for name in names if name not in readme) == []

"""How command help is laid out: wrapped paragraphs, and examples printed as written."""

from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.HelpFormatter):
    """Fills each paragraph of a description on its own and keeps indented lines as written.

    Paragraphs are separated by blank lines; a line starting with a space (an
    example command in the epilog) is printed unchanged, so examples can be
    copied into a shell.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks: list[str] = []
        for paragraph in textwrap.dedent(text).strip("\n").split("\n\n"):
            lines: list[str] = []
            prose: list[str] = []
            for line in paragraph.splitlines():
                if line.startswith(" "):
                    if prose:
                        lines.append(
                            textwrap.fill(
                                " ".join(prose),
                                width,
                                initial_indent=indent,
                                subsequent_indent=indent,
                            )
                        )
                        prose = []
                    lines.append(indent + line)
                else:
                    prose.append(line.strip())
            if prose:
                lines.append(
                    textwrap.fill(
                        " ".join(prose), width, initial_indent=indent, subsequent_indent=indent
                    )
                )
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)


def examples(*commands: str) -> str:
    """An epilog listing example command lines (``persona-collapse`` is prefixed)."""
    label = "Example:" if len(commands) == 1 else "Examples:"
    return "\n".join([label, *(f"  persona-collapse {command}" for command in commands)])

"""Generated parts of the docs: the CLI reference (docs/cli.md) and the settings table.

cog (the ``cogapp`` package, a test/dev dependency) runs the snippets between
``[[[cog`` and ``[[[end]]]`` markers in docs/*.md; those snippets call the functions
here and write what they return. This module never imports cog, so the library does
not depend on it. Regenerate every generated part with::

    python -m cogapp -r docs/*.md

and ``tests/test_docs.py`` fails when a generated part is stale.

Why the CLI reference uses click's plain help formatter and not typer's rich panels
(which is what ``chatface CMD --help`` shows in a terminal): the docs must come out
byte for byte the same on every machine, and rich's console is shaped by its
environment. typer reads ``TERMINAL_WIDTH``, ``FORCE_COLOR``, ``PY_COLORS`` and
``GITHUB_ACTIONS`` once, at import, and then colours the help with ANSI codes or
changes its width; rich also reads ``COLUMNS``, ``NO_COLOR`` and ``TERM``, falls back
to ASCII boxes on a stream that is not UTF-8, and pads every line with trailing
spaces that editors strip. Pinning all that down means replacing typer's private
console factory. Click's plain formatter has exactly two inputs, the width and the
maximum content width, which we pass; it shows the same usage line, help text,
arguments, options (with defaults, ranges and "required") and sub-commands, as plain
text that reads well in a code block.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer.main

from chatface.cli.main import app
from chatface.config import SETTINGS, toml_value

if TYPE_CHECKING:
    # typer >= 0.26 ships its own copy of click; its commands are not `click.Command`s.
    from typer._click import Command, Context

# Columns of the rendered help: wide enough that no example line wraps, narrow enough
# to read on GitHub without scrolling.
WIDTH = 100
PROG = "chatface"
REGENERATE = "python -m cogapp -r docs/*.md"


def _walk(command: Command, ctx: Context) -> Iterator[tuple[Context, Command]]:
    """Yield the command and then its sub-commands, depth first, in the order `--help` lists."""
    yield ctx, command
    # Groups list their commands in registration order (typer keeps it), so the docs
    # follow the order of `chatface --help`.
    list_commands = getattr(command, "list_commands", None)
    if list_commands is None:
        return
    for name in list_commands(ctx):
        sub = command.get_command(ctx, name)  # type: ignore[attr-defined]
        if sub is None or sub.hidden:
            continue
        yield from _walk(sub, _context(sub, name, ctx))


def _context(command: Command, name: str, parent: Context | None) -> Context:
    # A fixed width here is what makes the output independent of the terminal: click's
    # formatter only asks the terminal (shutil.get_terminal_size) when no width is given.
    return command.context_class(
        command, parent=parent, info_name=name, terminal_width=WIDTH, max_content_width=WIDTH
    )


def command_help() -> list[tuple[str, str]]:
    """``(command path, plain --help text)`` for ``chatface`` and every (sub-)command."""
    # get_command builds a fresh click tree on every call, so switching it to plain
    # formatting here changes nothing that the real CLI uses.
    root = typer.main.get_command(app)
    pages = []
    for ctx, command in _walk(root, _context(root, PROG, None)):
        command.rich_markup_mode = None  # type: ignore[attr-defined]
        text = command.get_help(ctx)
        pages.append((ctx.command_path, "\n".join(line.rstrip() for line in text.splitlines())))
    return pages


def cli_reference() -> str:
    """Markdown: one section per command, its ``--help`` in a fenced code block."""
    out = []
    for path, text in command_help():
        out += [f"## {path}", "", "```text", text, "```", ""]
    return "\n".join(out)


def _cell(text: str) -> str:
    """Text for a Markdown table cell; code spans (between backticks) stay as written."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside code spans only
        # '|' would end the cell; '<word>' would be taken for an HTML tag and vanish.
        parts[i] = re.sub(r"([|<])", r"\\\1", parts[i])
    return "`".join(parts)


def settings_table(section: str | None = None) -> str:
    """Markdown table of every setting (or one section's): name, default, env vars, help.

    The default is written as in config.toml; the first environment variable wins.
    """
    out = [
        "| setting | default | environment | meaning |",
        "|---|---|---|---|",
    ]
    for setting in SETTINGS:
        if section is not None and setting.section != section:
            continue
        envs = ", ".join(f"`{name}`" for name in setting.env_names())
        out.append(
            f"| `{setting.name}` | `{toml_value(setting.default)}` | {envs} "
            f"| {_cell(setting.help)} |"
        )
    return "\n".join(out) + "\n"

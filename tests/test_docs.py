"""Generated docs (CLI reference, settings table) are current and do not depend on the terminal."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from chatface.cli import docs_gen
from chatface.cli.main import app
from tests.cli.test_cli import all_commands

REPO = Path(__file__).resolve().parent.parent
BEGIN = "[[[cog"


def files_with_cog_markers() -> list[str]:
    """Every Markdown file of the repository that cog generates parts of, relative to it."""
    candidates = sorted(REPO.glob("*.md")) + sorted((REPO / "docs").glob("**/*.md"))
    return [str(p.relative_to(REPO)) for p in candidates if BEGIN in p.read_text()]


def test_generated_docs_are_current(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from cogapp import Cog
    except ImportError:  # pragma: no cover - the test extra installs it
        pytest.fail("cogapp is part of the test extra: pip install -e '.[test]'")
    files = files_with_cog_markers()
    assert "docs/cli.md" in files and "docs/configuration.md" in files, files
    # Relative paths, so that cog's diff names the files as a developer would.
    monkeypatch.chdir(REPO)
    out, err = io.StringIO(), io.StringIO()
    cog = Cog()
    cog.set_output(stdout=out, stderr=err)
    status = cog.main(["cog", "--check", "--diff", "--verbosity=1", *files])
    assert status == 0, (
        f"Generated docs are out of date. Regenerate them from the repository root with\n\n"
        f"    {docs_gen.REGENERATE}\n\nand commit the result.\n\n{out.getvalue()}{err.getvalue()}"
    )


def test_the_regeneration_command_covers_every_generated_file() -> None:
    # The one documented command must reach every file with cog markers.
    pattern = docs_gen.REGENERATE.split()[-1]
    assert pattern == "docs/*.md"
    for name in files_with_cog_markers():
        assert Path(name).match(pattern), f"{name} has cog markers that `{pattern}` misses"
    for page in ("docs/cli.md", "docs/architecture.md"):
        assert docs_gen.REGENERATE in (REPO / page).read_text(), page


def test_the_cli_reference_has_every_command_once() -> None:
    paths = [path for path, _ in docs_gen.command_help()]
    assert paths[0] == "chatface"
    assert len(paths) == len(set(paths))
    for command in all_commands():
        assert " ".join(["chatface", *command]) in paths, command
    # Groups get their own section too (their --help lists the sub-commands).
    assert {"chatface keys", "chatface config", "chatface weights"} <= set(paths)


def test_the_cli_reference_is_plain_fixed_width_text() -> None:
    reference = docs_gen.cli_reference()
    assert "\x1b" not in reference  # no ANSI colour codes
    for line in reference.splitlines():
        assert len(line) <= docs_gen.WIDTH, line
        assert line == line.rstrip(), f"trailing whitespace: {line!r}"
    # Each section shows the command's own usage line and its example on one line (a
    # wrapped example would be copied and pasted as two broken commands).
    root = typer.main.get_command(app)
    for path, text in docs_gen.command_help():
        assert text.startswith(f"Usage: {path} "), path
        command = root
        for name in path.split()[1:]:
            command = command.commands[name]  # type: ignore[attr-defined]
        [example] = [line for line in (command.help or "").splitlines() if "Example:" in line]
        assert f"  {example.strip()}\n" in text + "\n", f"{path}: example wrapped or missing"


def test_the_cli_reference_does_not_depend_on_the_terminal() -> None:
    # typer and rich read these when they are imported or print, so they are set for a
    # fresh interpreter; the reference must come out exactly as it does here.
    hostile = {
        "COLUMNS": "40",
        "LINES": "10",
        "TERMINAL_WIDTH": "37",
        "FORCE_COLOR": "1",
        "PY_COLORS": "1",
        "GITHUB_ACTIONS": "true",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "LANG": "C",
        "LC_ALL": "C",
    }
    env = {k: v for k, v in os.environ.items() if k not in hostile}
    env.update(hostile)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    code = (
        "import sys; from chatface.cli import docs_gen; "
        "sys.stdout.buffer.write(docs_gen.cli_reference().encode())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == docs_gen.cli_reference()


def test_the_settings_table_has_one_row_per_setting() -> None:
    from chatface.config import SETTINGS

    rows = [line for line in docs_gen.settings_table().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [s.name for s in SETTINGS]
    # '|' inside a help text must not split its cell; '<name>' must not vanish as HTML.
    assert all(row.count(" | ") == 3 for row in rows), rows
    assert "\\<name>" in docs_gen.settings_table()
    planner = docs_gen.settings_table("planner").splitlines()[2:]
    assert planner and all(row.startswith("| `planner.") for row in planner), planner


def test_plugins_page_describes_every_builtin_plugin() -> None:
    # docs/plugins.md lists the built-ins by hand (what they are for is prose); this keeps
    # the list complete and the registered names right.
    from chatface.cli.plugins import BUILTIN_PREFIX, plugin_report

    docs = (REPO / "docs" / "plugins.md").read_text()
    builtins = [p for p in plugin_report() if p["builtin"]]
    assert builtins
    for plugin in builtins:
        short = plugin["name"].removeprefix(BUILTIN_PREFIX)
        [row] = [line for line in docs.splitlines() if line.startswith(f"| `{short}` |")]
        for kind in ("backends", "directions", "planners", "weights"):
            for name in plugin["registered"][kind]:
                assert f"`{name}`" in row, (short, kind, name)

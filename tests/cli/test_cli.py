"""The command line as a user runs it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from chatface.cli.main import app
from chatface.config import load_config
from chatface.storage import Store

runner = CliRunner()


def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, list(args), input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def all_commands() -> list[list[str]]:
    import typer.main

    group = typer.main.get_command(app)
    paths = []
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        paths += [[name, s] for s in sub] if sub else [[name]]
    return paths


@pytest.mark.parametrize("path", all_commands(), ids=" ".join)
def test_every_command_has_help_with_an_example(path) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output


def test_plugins_json_lists_the_builtins() -> None:
    result = invoke("plugins", "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    [celeba] = [p for p in report if p["name"] == "chatface.plugins.celeba_directions"]
    assert celeba["builtin"] and celeba["status"] == "loaded"
    assert celeba["hooks"] == ["chatface_register_directions", "chatface_register_weights"]
    assert "smile" in celeba["registered"]["attributes"]
    assert celeba["registered"]["directions"] == ["celeba"]
    assert celeba["registered"]["weights"] == ["ffhq128_autoenc_130M_cls", "ffhq256_autoenc_cls"]


def test_plugins_table_names_every_plugin_at_80_columns() -> None:
    result = runner.invoke(app, ["plugins"], terminal_width=80)
    assert result.exit_code == 0
    assert "…" not in result.output
    first_column = [line.split("│")[1].strip() for line in result.output.splitlines()[4:-1]]
    names = ("diffae", "celeba_directions", "tiny", "rule_planner", "anthropic_planner", "mapper")
    names += ("identity", "schedules")
    for name in names:
        assert f"{name} (built-in)" in first_column or name in first_column, first_column
    assert result.output.count("built-in") == len(names)


def test_config_show_reports_sources(monkeypatch) -> None:
    monkeypatch.setenv("CHATFACE_RENDER_STEPS", "16")
    data = json.loads(invoke("config", "show", "--json").output)
    assert data["settings"]["render.steps"] == {"value": 16, "source": "$CHATFACE_RENDER_STEPS"}
    assert data["database_url"].startswith("sqlite:///")


def test_config_defaults_is_loadable_as_a_config_file(isolated_env) -> None:
    isolated_env.mkdir()
    (isolated_env / "config.toml").write_text(invoke("config", "defaults").output)
    config = load_config()
    assert config.file == isolated_env / "config.toml"
    assert config["render.steps"] == 8


def test_keys_set_from_stdin_never_prints_the_value(isolated_env) -> None:
    result = invoke("keys", "set", "anthropic", input="sk-secret-value\n")
    assert result.exit_code == 0 and "sk-secret" not in result.output
    path = isolated_env / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listing = invoke("keys", "list").output
    assert "anthropic: set" in listing and "sk-secret" not in listing
    assert "discord: not set" in listing
    assert invoke("keys", "remove", "anthropic").exit_code == 0
    assert invoke("keys", "remove", "anthropic").exit_code == 1


def _populate() -> None:
    with Store.from_config(load_config()) as store:
        user = store.get_or_create_user("cli", "alice")
        conversation = store.get_or_create_conversation(user.id)
        face = store.add_face(
            conversation.id,
            aligned_png=b"png",
            inverse_transform=[1, 0, 0, 0, 1, 0],
            latents=b"latents",
            backend="tiny",
            weights_sha256="0" * 64,
            source_name="obama.jpg",
        )
        for i, reply in enumerate(["Adding a smile.", "Older.", "Glasses."]):
            plan = {"action": "edit", "edits": [], "steps": None, "reply": reply}
            store.append_edit(face.id, plan_json=json.dumps(plan), state_json=f'{{"n": {i}}}')
        store.undo(face.id)
        other = store.get_or_create_user("cli", "bob")
        store.get_or_create_conversation(other.id)


def test_history_and_forget() -> None:
    _populate()
    data = json.loads(invoke("history", "--user", "alice", "--json").output)
    [conversation] = data["conversations"]
    [face] = conversation["faces"]
    assert face["source"] == "obama.jpg" and face["cursor"] == 2
    assert [e["current"] for e in face["edits"]] == [False, True, False]
    assert face["edits"][1]["plan"]["reply"] == "Older."
    tree = invoke("history", "--user", "alice").output
    assert "obama.jpg" in tree and "* 2 Older." in tree

    assert invoke("forget", "--user", "alice", input="n\n").exit_code == 1  # declined
    assert json.loads(invoke("history", "--user", "alice", "--json").output)["conversations"]
    result = invoke("forget", "--user", "alice", "--yes")
    assert result.exit_code == 0
    assert result.output.strip() == (
        "Deleted 6 records (3 edits, 1 face, 1 conversation, 1 user)."
    ), result.output
    assert json.loads(invoke("history", "--user", "alice", "--json").output)["conversations"] == []
    assert "No stored sessions" in invoke("history", "--user", "alice").output
    bob = json.loads(invoke("history", "--user", "bob", "--json").output)
    assert len(bob["conversations"]) == 1  # other users are untouched


def test_user_errors_are_one_line_not_a_traceback(isolated_env) -> None:
    isolated_env.mkdir()
    (isolated_env / "config.toml").write_text("[render]\nsteps = 'x'\n")
    result = subprocess.run(
        [sys.executable, "-m", "chatface", "config", "show"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Error: render.steps")
    assert "Traceback" not in result.stderr


def test_help_starts_without_importing_torch() -> None:
    code = "import sys; from chatface.cli.main import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_help_renders_arguments_and_flags_conventionally() -> None:
    # Flags show no value type, arguments are upper-case in the usage line.
    result = runner.invoke(app, ["edit", "--help"], terminal_width=100)
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert "chatface edit [OPTIONS] PHOTO [MESSAGE]" in usage
    for flag in ("--side-by-side", "--gif", "--help"):
        row = next(line for line in result.output.splitlines() if flag in line)
        assert "bool" not in row and "<" not in row, row
    set_row = next(line for line in result.output.splitlines() if "--set" in line)
    assert "list[" not in set_row, set_row
    top = runner.invoke(app, ["--help"], terminal_width=100).output
    assert "<bool>" not in top

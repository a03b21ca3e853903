"""Settings: defaults, config file, environment, and the generated config.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatface.config import SETTINGS, load_config, render_defaults_toml, toml_value
from chatface.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_repo_config_toml_lists_every_setting_with_its_default() -> None:
    # config.toml is generated from SETTINGS; regenerate with `chatface config defaults`.
    assert (REPO / "config.toml").read_text() == render_defaults_toml()


def test_defaults_apply_when_nothing_is_set(isolated_env) -> None:
    config = load_config()
    assert config.file is None
    assert config["render.steps"] == 8
    assert config.sources["render.steps"] == "default"
    assert config.data_dir == isolated_env
    assert config.database_url == f"sqlite:///{isolated_env / 'chatface.db'}"


def test_file_then_environment_override(isolated_env, monkeypatch) -> None:
    isolated_env.mkdir()
    (isolated_env / "config.toml").write_text('[render]\nsteps = 20\nschedule = "constant"\n')
    config = load_config()
    assert (config["render.steps"], config["render.schedule"]) == (20, "constant")
    assert config.sources["render.steps"] == str(isolated_env / "config.toml")
    monkeypatch.setenv("CHATFACE_RENDER_STEPS", "12")
    config = load_config()
    assert (
        config["render.steps"] == 12 and config.sources["render.steps"] == "$CHATFACE_RENDER_STEPS"
    )
    assert config["render.schedule"] == "constant"


def test_explicit_config_path(tmp_path, monkeypatch) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[storage]\nurl = "postgresql+psycopg://u@h/db"\n')
    monkeypatch.setenv("CHATFACE_CONFIG", str(path))
    assert load_config().database_url == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("CHATFACE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config()


def test_aliases(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CHATFACE_LOAD_PLUGINS", "a, b")
    assert load_config().plugin_allow_list() == {"a", "b"}
    monkeypatch.setenv("CHATFACE_LOAD_PLUGINS", "*")
    assert load_config().plugin_allow_list() is None
    monkeypatch.setenv("CHATFACE_LOAD_PLUGINS", "")
    assert load_config().plugin_allow_list() == set()
    monkeypatch.setenv("CHATFACE_PATHS_DATA_DIR", str(tmp_path / "x"))
    # The short alias wins over the long name.
    assert load_config().data_dir != tmp_path / "x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[render]\nsteps = 'many'\n", "render.steps .* must be int"),
        ("[render]\nsteps = 2.5\n", "must be int"),
        ("[render]\nstepz = 2\n", "unknown setting 'render.stepz'"),
        ("steps = 2\n", "must be a \\[section\\]"),
        ("[render\n", "not valid TOML"),
    ],
)
def test_bad_config_files_are_clear_errors(isolated_env, text, message) -> None:
    isolated_env.mkdir()
    (isolated_env / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config()


def test_bad_environment_value(monkeypatch) -> None:
    monkeypatch.setenv("CHATFACE_QUEUE_MAX_BATCH", "eight")
    with pytest.raises(ConfigError, match=r"queue.max_batch from \$CHATFACE_QUEUE_MAX_BATCH"):
        load_config()


def test_every_setting_has_help_and_a_unique_env_name() -> None:
    envs = [name for s in SETTINGS for name in s.env_names()]
    assert len(envs) == len(set(envs))
    assert all(len(s.help) > 20 for s in SETTINGS)


def test_every_setting_is_documented() -> None:
    # The table is generated (tests/test_docs.py keeps it current); this says what it
    # must hold: one row per setting with its default and every environment variable.
    docs = (REPO / "docs" / "configuration.md").read_text()
    rows = {line.split("`")[1]: line for line in docs.splitlines() if line.startswith("| `")}
    assert list(rows) == [s.name for s in SETTINGS]
    for setting in SETTINGS:
        row = rows[setting.name]
        assert f"| `{toml_value(setting.default)}` |" in row, setting.name
        for env in setting.env_names():
            assert f"`{env}`" in row, (setting.name, env)

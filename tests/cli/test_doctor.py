"""``chatface doctor``: what it finds, what it says would run, and that it never shows a key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from chatface.cli.doctor import hide_password
from chatface.cli.main import app
from chatface.config import load_config
from chatface.keys import key_store
from chatface.storage import Store, head_revision

runner = CliRunner()
TELEGRAM = "123456:telegram-secret-token"
DISCORD = "discord.secret.token"
ANTHROPIC = "sk-ant-secret-key"


def doctor(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["doctor", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def doctor_json() -> tuple[int, dict]:
    code, output = doctor("--json")
    return code, json.loads(output)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATFACE_ENGINE_BACKEND", "tiny")


def test_ready_with_tokens_set_and_their_values_never_shown(
    tiny: None, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TELEGRAM)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC)
    key_store(isolated_env).set("discord", DISCORD)
    code, output = doctor()
    json_code, report = doctor_json()
    for text in (output, json.dumps(report)):
        assert TELEGRAM not in text and DISCORD not in text and ANTHROPIC not in text
        assert "secret" not in text
    assert code == json_code == 0, output
    assert "telegram: set ($TELEGRAM_BOT_TOKEN)" in output
    assert f"discord: set ({isolated_env / 'keys.json'})" in output
    assert "anthropic: set ($ANTHROPIC_API_KEY)" in output
    assert "serve telegram: ready (backend 'tiny')" in output
    assert "chat, demo, edit: backend 'tiny'" in output
    assert report["ok"] is True
    assert report["keys"] == {
        "anthropic": "$ANTHROPIC_API_KEY",
        "telegram": "$TELEGRAM_BOT_TOKEN",
        "discord": str(isolated_env / "keys.json"),
    }
    assert report["backend_status"]["ok"] and "random weights" in report["backend_status"]["detail"]
    assert report["commands"]["serve discord"] == {"ok": True, "detail": "ready (backend 'tiny')"}


def test_missing_weights_fail_and_chat_falls_back_to_tiny() -> None:
    code, output = doctor()
    assert code == 1
    assert "Model weights 'ffhq256_autoenc' are not installed" in output
    assert "the random-weight 'tiny' backend instead of 'diffae'" in output
    assert "Not ready" in output
    _, report = doctor_json()
    assert report["ok"] is False and report["backend"] == "diffae"
    diffae = {w["name"]: w["installed"] for w in report["weights"]["diffae"]}
    # The backend's own weights and those of the directions that edit its latents.
    assert diffae == {"ffhq128_autoenc_130M": False, "ffhq128_autoenc_130M_cls": False,
                      "ffhq256_autoenc": False, "ffhq256_autoenc_cls": False}  # fmt: skip
    assert report["weights"]["tiny"] == []
    telegram = report["commands"]["serve telegram"]
    assert not telegram["ok"] and "no 'telegram' token" in telegram["detail"]
    assert "backend 'diffae' is not ready" in telegram["detail"]


def test_settings_that_differ_from_the_defaults_and_where_they_come_from(
    tiny: None, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolated_env.mkdir()
    (isolated_env / "config.toml").write_text("[render]\nsteps = 20\n")
    monkeypatch.setenv("CHATFACE_WEIGHTS_BASE_URL", "https://me:mirror-pass@mirror.example/w")
    _, report = doctor_json()
    assert report["config_file"] == str(isolated_env / "config.toml")
    assert report["changed"]["render.steps"] == {
        "value": 20, "source": str(isolated_env / "config.toml")
    }  # fmt: skip
    assert report["changed"]["weights.base_url"]["value"] == "https://me:***@mirror.example/w"
    assert report["changed"]["engine.backend"]["source"] == "$CHATFACE_ENGINE_BACKEND"
    assert "render.schedule" not in report["changed"]  # still the default
    assert report["data_dir"] == str(isolated_env) and report["data_dir_exists"]
    code, output = doctor()
    assert code == 0 and "mirror-pass" not in output
    assert f"render.steps = 20  ({isolated_env / 'config.toml'})" in output


def test_a_new_database_is_not_created_and_a_migrated_one_is_at_head(
    tiny: None, isolated_env: Path
) -> None:
    database = isolated_env / "chatface.db"
    _, report = doctor_json()
    assert report["storage"]["ok"] and "not created yet" in report["storage"]["detail"]
    assert not database.exists()
    Store.from_config(load_config()).close()
    _, report = doctor_json()
    assert report["storage"] == {
        "ok": True, "detail": f"opens; at the latest schema revision ({head_revision()})"
    }  # fmt: skip


def test_a_database_from_a_newer_chatface_fails(tiny: None, isolated_env: Path) -> None:
    Store.from_config(load_config()).close()
    engine = sa.create_engine(f"sqlite:///{isolated_env / 'chatface.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE chatface_alembic_version SET version_num = 'f00d'"))
    engine.dispose()
    code, output = doctor()
    assert code == 1
    assert "NO The database" in output and "a newer chatface wrote it" in output
    assert "serve telegram: not ready" in output and "the database does not open" in output


def test_a_url_that_does_not_parse_hides_its_password(
    tiny: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATFACE_STORAGE_URL", "postgres ql://bob:db-pass@127.0.0.1:9/x")
    code, output = doctor()
    assert code == 1 and "db-pass" not in output
    assert "NO cannot use this URL: ArgumentError" in output


def test_a_server_database_that_does_not_answer_hides_its_password(
    tiny: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 on 127.0.0.1: nothing listens, so connecting is refused at once.
    monkeypatch.setenv("CHATFACE_STORAGE_URL", "postgresql+psycopg://bob:db-pass@127.0.0.1:9/x")
    code, output = doctor()
    assert code == 1 and "db-pass" not in output
    assert "Database postgresql+psycopg://bob:***@127.0.0.1:9/x" in output
    assert "NO cannot open it:" in output


def test_planners(tiny: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATFACE_PLANNER_NAME", "anthropic")
    code, report = doctor_json()
    assert code == 0  # without a key every message still gets the rules planner
    assert report["planner_status"] == {
        "ok": True, "detail": "no 'anthropic' key: every message falls back to the rules planner"
    }  # fmt: skip
    monkeypatch.setenv("CHATFACE_PLANNER_NAME", "oracle")
    code, report = doctor_json()
    assert code == 1 and not report["planner_status"]["ok"]
    assert "No planner called 'oracle'" in report["planner_status"]["detail"]


def test_an_unsafe_key_file_is_reported_not_raised(tiny: None, isolated_env: Path) -> None:
    key_store(isolated_env).set("telegram", TELEGRAM)
    (isolated_env / "keys.json").chmod(0o644)
    code, output = doctor()
    assert code == 0 and TELEGRAM not in output
    assert "telegram: not set" in output and "chmod 600" in output


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("postgresql+psycopg://bob:pw@db.example:5432/chatface",
         "postgresql+psycopg://bob:***@db.example:5432/chatface"),
        ("https://:token@mirror.example/w", "https://:***@mirror.example/w"),
        ("https://user@mirror.example/w", "https://user@mirror.example/w"),
        ("sqlite:////home/me/chatface.db", "sqlite:////home/me/chatface.db"),
        # Not URLs that can be taken apart: all before the @ goes.
        ("http://u:p@[::1", "***@[::1"),
        ("bob:pw@db.example/chatface", "***@db.example/chatface"),
        ("postgres ql://bob:pw@db.example/x", "postgres ***@db.example/x"),
        ("rules", "rules"),
    ],
)  # fmt: skip
def test_hide_password(value: str, shown: str) -> None:
    assert hide_password(value) == shown

"""Secrets: environment first, then a 0600 key file; never printed."""

from __future__ import annotations

import os
import stat

import pytest

from chatface.errors import KeyStoreError
from chatface.keys import KeyStore


def test_set_writes_a_0600_file_and_get_reads_it(tmp_path) -> None:
    store = KeyStore(tmp_path / "d" / "keys.json", environ={})
    store.set("anthropic", "  sk-test-123\n")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.get("anthropic") == "sk-test-123"
    assert store.names() == ["anthropic"]
    assert store.source("anthropic") == str(store.path)
    assert store.remove("anthropic") and not store.remove("anthropic")
    assert store.get("anthropic") is None


def test_environment_wins_over_the_file(tmp_path) -> None:
    environ = {"TELEGRAM_BOT_TOKEN": "from-env"}
    store = KeyStore(tmp_path / "keys.json", environ=environ)
    store.set("telegram", "from-file")
    assert store.get("telegram") == "from-env"
    assert store.source("telegram") == "$TELEGRAM_BOT_TOKEN"
    environ["CHATFACE_KEY_TELEGRAM"] = "chatface-var"
    assert store.get("telegram") == "chatface-var"


def test_file_readable_by_others_is_refused(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys.json", environ={})
    store.set("discord", "tok")
    os.chmod(store.path, 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        store.get("discord")


def test_require_names_the_command(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys.json", environ={})
    with pytest.raises(KeyStoreError, match="chatface keys set anthropic.*ANTHROPIC_API_KEY"):
        store.require("anthropic")


@pytest.mark.parametrize("name", ["", "Upper", "has space", "../etc"])
def test_bad_names(tmp_path, name) -> None:
    with pytest.raises(KeyStoreError, match="Key names"):
        KeyStore(tmp_path / "keys.json", environ={}).get(name)


def test_corrupt_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{not json")
    os.chmod(path, 0o600)
    with pytest.raises(KeyStoreError, match="Cannot read the key file"):
        KeyStore(path, environ={}).get("anthropic")

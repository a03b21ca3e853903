"""Fixtures shared by every test: an isolated data dir and no stray settings or plugins."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatface.engine.plugins import ChatFacePluginManager, PluginRecord, make_plugin_manager
from chatface.keys import KNOWN_ENV

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ("tests.databases",)  # database_url, on SQLite and PostgreSQL


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CHATFACE_HOME in a temp dir, no CHATFACE_* settings or keys, no installed plugins."""
    home = tmp_path / "home"
    isolate(monkeypatch, home)
    return home


def isolate(patch: pytest.MonkeyPatch, home: Path) -> None:
    """The isolated environment of every test, set with ``patch``; module-scoped fixtures,
    made before any test's, call it in their own ``pytest.MonkeyPatch.context()``."""
    for name in list(os.environ):
        if name.startswith("CHATFACE_") or name in KNOWN_ENV.values():
            patch.delenv(name)
    patch.setenv("CHATFACE_HOME", str(home))
    # Tests never load installed third-party plugins unless they ask to.
    patch.setenv("CHATFACE_LOAD_PLUGINS", "")
    # Renders take the exact fp32 path, so results are the same on every CPU (whether it
    # has bf16 or not); tests of the fast path set render.precision themselves.
    patch.setenv("CHATFACE_RENDER_PRECISION", "fp32")
    # Tests never download: the Hub points at a closed port unless a test starts a fake
    # one, and Google Drive (gdown) cannot be reached.
    patch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    patch.delenv("HF_HUB_OFFLINE", raising=False)
    patch.setattr("gdown.download_folder", _no_google_drive)


def _no_google_drive(**kwargs: object) -> list[str]:
    raise ConnectionError("Google Drive cannot be reached from the tests")


@pytest.fixture
def pm() -> ChatFacePluginManager:
    """A plugin manager with only the built-in plugins."""
    return make_plugin_manager(load_installed=False)


@pytest.fixture
def add_plugin(pm: ChatFacePluginManager) -> Iterator[Callable[[object, str], None]]:
    """Register throw-away plugins on ``pm``; they are unregistered afterwards."""
    added: list[str] = []

    def add(plugin: object, name: str) -> None:
        pm.register_plugin(plugin, PluginRecord(name, builtin=False, status="loaded"))
        added.append(name)

    try:
        yield add
    finally:
        for name in added:
            if pm.get_plugin(name) is not None:
                pm.unregister(name=name)
            pm.records.pop(name, None)


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Put a module plus its dist-info (with a ``chatface`` entry point) on sys.path."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def make(dist: str, module: str, source: str, entry: str | None = None) -> Path:
        (root / f"{module}.py").write_text(source)
        info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[chatface]\n{entry or module} = {module}\n")
        importlib.invalidate_caches()
        monkeypatch.delitem(sys.modules, module, raising=False)
        return root

    return make

"""Fixtures for storage tests: ``store`` is a Store over ``database_url`` (tests/databases.py),
so each test that uses it runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatface.storage import Store


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def store(database_url: str, files_dir: Path) -> Iterator[Store]:
    with Store(database_url, files_dir) as opened:
        yield opened

"""Tests of schema versioning on SQLite and PostgreSQL: fresh databases, upgrades that
keep data, a failing upgrade that rolls back, and databases this code must refuse."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from chatface.errors import StorageError
from chatface.storage import MIGRATIONS, Migration, Store, migrate
from chatface.storage.migrations import latest_version, read_version

OUR_TABLES = {"users", "conversations", "faces", "edits", "messages", "schema_version"}


def add_nickname(connection: Connection) -> None:
    connection.execute(sa.text("ALTER TABLE users ADD COLUMN nickname VARCHAR(64) DEFAULT ''"))
    connection.execute(sa.text("UPDATE users SET nickname = 'nick-' || platform_user_id"))


def add_nickname_then_fail(connection: Connection) -> None:
    add_nickname(connection)
    raise RuntimeError("bug in migration 2")


V2 = Migration(2, "users get a nickname", add_nickname)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A bare engine (no Store) on an empty database of each backend."""
    if database_url.startswith("sqlite"):
        Path(sa.make_url(database_url).database or "").parent.mkdir(parents=True)
    created = sa.create_engine(database_url)
    try:
        yield created
    finally:
        created.dispose()


def version_of(engine: Engine) -> int | None:
    with engine.connect() as connection:
        return read_version(connection)


def columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def write_v1_data(database_url: str, files_dir: Path) -> int:
    with Store(database_url, files_dir) as store:
        assert store.schema_version == 1
        user = store.get_or_create_user("telegram", "42")
        conversation = store.get_or_create_conversation(user.id or 0, "c")
        face = store.add_face(
            conversation.id or 0,
            aligned_png=b"\x00png",
            inverse_transform=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            latents=b"\x00latents\xff",
            backend="tiny",
            weights_sha256="0" * 64,
        )
        store.append_edit(face.id or 0, plan_json="{}", state_json='{"smile": 1}')
        return face.id or 0


def assert_v1_data_intact(database_url: str, files_dir: Path, face_id: int) -> None:
    with Store(database_url, files_dir) as store:
        assert [u.platform_user_id for u in store.users()] == ["42"]
        face = store.get_face(face_id)
        assert face.latents == b"\x00latents\xff"
        assert face.aligned_png == b"\x00png"
        assert store.current_state_json(face_id) == '{"smile": 1}'


def test_shipped_migrations_are_numbered_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert latest_version() == len(MIGRATIONS)


def test_fresh_database_gets_tables_and_latest_version(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE someone_elses (x INTEGER)"))
    assert migrate(engine) == latest_version()
    tables = set(sa.inspect(engine).get_table_names())
    assert tables == OUR_TABLES | {"someone_elses"}
    assert version_of(engine) == latest_version()
    assert migrate(engine) == latest_version()  # a second run changes nothing
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT COUNT(*) FROM schema_version")).scalar_one()
    assert rows == 1


def test_upgrade_keeps_data_and_adds_column(
    database_url: str, files_dir: Path, engine: Engine
) -> None:
    write_v1_data(database_url, files_dir)
    assert "nickname" not in columns(engine, "users")

    assert migrate(engine, [*MIGRATIONS, V2]) == 2

    assert version_of(engine) == 2
    assert "nickname" in columns(engine, "users")
    with engine.connect() as connection:
        nick = connection.execute(sa.text("SELECT nickname FROM users")).scalar_one()
    assert nick == "nick-42"
    assert migrate(engine, [*MIGRATIONS, V2]) == 2  # already there: nothing runs again
    engine.dispose()
    if database_url.startswith("sqlite"):
        db = Path(sa.make_url(database_url).database or "")
        backup = db.with_name(db.name + ".bak-v1")
        assert backup.is_file()
        copy = sqlite3.connect(backup)
        try:
            assert copy.execute("SELECT version FROM schema_version").fetchone() == (1,)
            assert copy.execute("SELECT platform_user_id FROM users").fetchall() == [("42",)]
            names = [row[1] for row in copy.execute("PRAGMA table_info(users)")]
            assert "nickname" not in names
        finally:
            copy.close()
    # This code's store knows only version 1, so it must refuse the upgraded database.
    with pytest.raises(StorageError, match="Upgrade chatface"):
        Store(database_url, files_dir)


def test_failing_migration_rolls_back(database_url: str, files_dir: Path, engine: Engine) -> None:
    face_id = write_v1_data(database_url, files_dir)
    broken = Migration(2, "users get a nickname", add_nickname_then_fail)

    with pytest.raises(StorageError, match="version 2.*bug in migration 2.*left at version 1"):
        migrate(engine, [*MIGRATIONS, broken])

    assert version_of(engine) == 1
    assert "nickname" not in columns(engine, "users")  # the ALTER TABLE was undone too
    engine.dispose()
    assert_v1_data_intact(database_url, files_dir, face_id)
    if database_url.startswith("sqlite"):
        db = Path(sa.make_url(database_url).database or "")
        assert db.with_name(db.name + ".bak-v1").is_file()


def test_later_failure_keeps_earlier_steps(database_url: str, files_dir: Path) -> None:
    write_v1_data(database_url, files_dir)
    engine = sa.create_engine(database_url)
    try:

        def fail(connection: Connection) -> None:
            raise RuntimeError("step 3 breaks")

        with pytest.raises(StorageError, match="left at version 2"):
            migrate(engine, [*MIGRATIONS, V2, Migration(3, "breaks", fail)])
        assert version_of(engine) == 2
        assert "nickname" in columns(engine, "users")
    finally:
        engine.dispose()


def test_newer_database_is_refused(database_url: str, files_dir: Path, engine: Engine) -> None:
    write_v1_data(database_url, files_dir)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE schema_version SET version = 99"))
    with pytest.raises(StorageError, match="schema version 99.*Upgrade chatface"):
        migrate(engine)
    with pytest.raises(StorageError, match="Upgrade chatface"):
        Store(database_url, files_dir)
    assert version_of(engine) == 99


def test_tables_without_version_are_refused(
    database_url: str, files_dir: Path, engine: Engine
) -> None:
    write_v1_data(database_url, files_dir)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM schema_version"))
    with pytest.raises(StorageError, match="schema_version table .* is empty"):
        migrate(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE schema_version"))
    with pytest.raises(StorageError, match="no schema_version table"):
        Store(database_url, files_dir)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT COUNT(*) FROM users")).scalar_one() == 1


def test_migration_list_must_have_no_gaps(engine: Engine) -> None:
    with pytest.raises(ValueError, match="1, 2, 3"):
        migrate(engine, [*MIGRATIONS, Migration(3, "skips 2", add_nickname)])
    assert sa.inspect(engine).get_table_names() == []

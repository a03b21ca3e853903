"""Tests of the schema upgrade on start, on SQLite and PostgreSQL: fresh databases, the
hand-written runner's databases adopted with their data, upgrades that keep data, failing
upgrades that roll back, the SQLite backup, and databases this code must refuse."""

from __future__ import annotations

import sqlite3
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chatface.errors import StorageError
from chatface.storage import Store, head_revision, migrate, pending_upgrade
from chatface.storage.migrations import OUR_TABLES, VERSION_TABLE
from tests.storage.legacy import LATENTS, PNG, STATE, create_legacy_database

HEAD = head_revision()  # what a store creates today; test revisions go on top
NEXT = "a1b2c3d4e5f6"  # revisions the tests add on top of the shipped ones
AFTER_NEXT = "b2c3d4e5f6a7"
AddRevision = Callable[..., Path]

# Adds a column with a full table copy on SQLite (recreate="always"), as batch mode does
# for most changes there: users is a parent table, so this fails unless foreign keys are
# off during the upgrade. On SQLite it also checks that the backup exists before any
# revision runs.
NICKNAME = """
    from pathlib import Path
    import sqlalchemy as sa
    from alembic import op

    def upgrade():
        bind = op.get_bind()
        sqlite = bind.dialect.name == "sqlite"
        if sqlite:
            db = Path(bind.engine.url.database)
            assert db.with_name(db.name + ".bak-{backup}").is_file(), "no backup yet"
        with op.batch_alter_table(
            "users",
            recreate="always" if sqlite else "auto",
            table_kwargs={{"sqlite_autoincrement": True}},
        ) as batch:
            batch.add_column(sa.Column("nickname", sa.String(64), nullable=True))
        op.execute("UPDATE users SET nickname = 'nick-' || platform_user_id")
        {then}
"""


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A bare engine (no Store) on an empty database of each backend."""
    if database_url.startswith("sqlite"):
        Path(sa.make_url(database_url).database or "").parent.mkdir(parents=True, exist_ok=True)
    created = sa.create_engine(database_url)
    try:
        yield created
    finally:
        created.dispose()


@pytest.fixture
def add_revision(tmp_path: Path) -> Iterator[AddRevision]:
    """Writes test revisions into a folder of their own; yields the writer."""
    folder = tmp_path / "versions"
    folder.mkdir()

    def add(revision: str, down: str, body: str, **fields: str) -> Path:
        source = textwrap.dedent(body.format(**fields)) + (
            f"\nrevision = {revision!r}\ndown_revision = {down!r}\n"
            "branch_labels = None\ndepends_on = None\n"
        )
        (folder / f"{revision}_test.py").write_text(source)
        return folder

    yield add


def revision_of(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
        return [row[0] for row in rows]


def columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def sqlite_file(database_url: str) -> Path | None:
    if not database_url.startswith("sqlite"):
        return None
    return Path(sa.make_url(database_url).database or "")


def assert_legacy_rows_intact(database_url: str, files_dir: Path) -> None:
    with Store(database_url, files_dir) as store:
        assert [(u.platform, u.platform_user_id) for u in store.users()] == [("telegram", "42")]
        face = store.get_face(1)
        assert (face.aligned_png, face.latents, face.cursor) == (PNG, LATENTS, 1)
        assert face.created_at.isoformat() == "2024-05-01T12:00:00+00:00"
        assert store.current_state_json(1) == STATE
        assert [m.text for m in store.messages(1)] == ["smile please"]
        # Ids are never reused: the next user gets 2 even on SQLite.
        assert store.get_or_create_user("discord", "7").id == 2


def test_fresh_database_gets_tables_and_latest_revision(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE someone_elses (x INTEGER)"))
    assert migrate(engine) == head_revision()
    tables = set(sa.inspect(engine).get_table_names())
    assert tables - {"sqlite_sequence"} == OUR_TABLES | {VERSION_TABLE, "someone_elses"}
    assert revision_of(engine) == [head_revision()]
    assert migrate(engine) == head_revision()  # a second run changes nothing
    assert revision_of(engine) == [head_revision()]


def test_fresh_sqlite_file_gets_no_backup(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'chatface.db'}", tmp_path / "files") as store:
        assert store.schema_revision == head_revision()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chatface.db"]


def test_legacy_database_is_adopted_with_its_data(database_url: str, files_dir: Path) -> None:
    create_legacy_database(database_url)
    with Store(database_url, files_dir) as store:
        assert store.schema_revision == head_revision()
        tables = set(sa.inspect(store.engine).get_table_names())
        assert "schema_version" not in tables
        assert revision_of(store.engine) == [head_revision()]
    assert_legacy_rows_intact(database_url, files_dir)
    db = sqlite_file(database_url)
    if db is not None:
        backup = sqlite3.connect(db.with_name(db.name + ".bak-v1"))
        try:
            assert backup.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
            assert backup.execute("SELECT platform_user_id FROM users").fetchall() == [("42",)]
            assert backup.execute("SELECT latents FROM faces").fetchall() == [(LATENTS,)]
        finally:
            backup.close()


def test_upgrade_keeps_data_and_adds_column(
    database_url: str, files_dir: Path, engine: Engine, add_revision: AddRevision
) -> None:
    create_legacy_database(database_url)
    # Adoption and the next revision in one go: the backup is named after version 1.
    versions = add_revision(NEXT, HEAD, NICKNAME, backup="v1", then="")

    assert migrate(engine, [versions]) == NEXT

    assert revision_of(engine) == [NEXT]
    assert "nickname" in columns(engine, "users")
    with engine.connect() as connection:
        row = connection.execute(sa.text("SELECT id, nickname FROM users")).one()
        assert tuple(row) == (1, "nick-42")
        faces = connection.execute(sa.text("SELECT conversation_id, latents FROM faces"))
        assert [tuple(r) for r in faces] == [(1, LATENTS)]
    assert migrate(engine, [versions]) == NEXT  # already there: nothing runs again
    engine.dispose()
    db = sqlite_file(database_url)
    if db is not None:
        copy = sqlite3.connect(db)
        try:
            # The table copy kept AUTOINCREMENT and left no row pointing nowhere.
            sql = copy.execute("SELECT sql FROM sqlite_master WHERE name = 'users'").fetchone()
            assert "AUTOINCREMENT" in sql[0]
            assert copy.execute("PRAGMA foreign_key_check").fetchall() == []
        finally:
            copy.close()
    # This code's store does not know NEXT, so it must refuse the upgraded database.
    with pytest.raises(StorageError, match=f"revision {NEXT}.*Upgrade chatface"):
        Store(database_url, files_dir)


def test_backup_holds_the_schema_and_data_before_the_upgrade(
    tmp_path: Path, files_dir: Path, add_revision: AddRevision
) -> None:
    url = f"sqlite:///{tmp_path / 'chatface.db'}"
    with Store(url, files_dir) as store:
        store.get_or_create_user("telegram", "42")
    versions = add_revision(NEXT, HEAD, NICKNAME, backup=HEAD, then="")
    engine = sa.create_engine(url)
    try:
        assert migrate(engine, [versions]) == NEXT
    finally:
        engine.dispose()
    backup = sqlite3.connect(tmp_path / f"chatface.db.bak-{HEAD}")
    try:
        rows = backup.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
        assert rows == [(HEAD,)]
        assert backup.execute("SELECT platform_user_id FROM users").fetchall() == [("42",)]
        assert "nickname" not in [row[1] for row in backup.execute("PRAGMA table_info(users)")]
    finally:
        backup.close()


def test_failing_revision_rolls_back(
    database_url: str, files_dir: Path, engine: Engine, add_revision: AddRevision
) -> None:
    with Store(database_url, files_dir) as store:
        store.get_or_create_user("telegram", "42")
    then = 'raise RuntimeError("bug in the revision")'
    versions = add_revision(NEXT, HEAD, NICKNAME, backup=HEAD, then=then)

    pattern = f"to {NEXT} failed: bug in the revision.*rolled back.*still at {HEAD}"
    with pytest.raises(StorageError, match=pattern):
        migrate(engine, [versions])

    assert revision_of(engine) == [HEAD]
    assert "nickname" not in columns(engine, "users")  # the table copy was undone too
    engine.dispose()
    with Store(database_url, files_dir) as store:
        assert [u.platform_user_id for u in store.users()] == ["42"]
    db = sqlite_file(database_url)
    if db is not None:
        assert db.with_name(f"{db.name}.bak-{HEAD}").is_file()


def test_later_failure_rolls_back_earlier_revisions_too(
    database_url: str, files_dir: Path, engine: Engine, add_revision: AddRevision
) -> None:
    # One transaction for the whole upgrade: the database is never left between
    # revisions, it is either as before (and as its backup) or at the new head.
    create_legacy_database(database_url)
    add_revision(NEXT, HEAD, NICKNAME, backup="v1", then="")
    versions = add_revision(
        AFTER_NEXT, NEXT, 'def upgrade():\n    raise RuntimeError("step 2 breaks")\n'
    )
    with pytest.raises(StorageError, match="step 2 breaks.*still at v1"):
        migrate(engine, [versions])
    tables = set(sa.inspect(engine).get_table_names())
    assert "schema_version" in tables and VERSION_TABLE not in tables
    assert "nickname" not in columns(engine, "users")
    engine.dispose()
    assert_legacy_rows_intact(database_url, files_dir)


def test_newer_revision_is_refused(database_url: str, files_dir: Path, engine: Engine) -> None:
    Store(database_url, files_dir).close()
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'ffffffffffff'"))
    with pytest.raises(StorageError, match="revision ffffffffffff.*newer.*Upgrade chatface"):
        Store(database_url, files_dir)
    assert revision_of(engine) == ["ffffffffffff"]


def test_newer_legacy_version_is_refused(
    database_url: str, files_dir: Path, engine: Engine
) -> None:
    create_legacy_database(database_url, version=99)
    with pytest.raises(StorageError, match="schema version 99.*Upgrade chatface"):
        Store(database_url, files_dir)
    tables = set(sa.inspect(engine).get_table_names())
    assert "schema_version" in tables and VERSION_TABLE not in tables


def test_tables_without_version_are_refused(
    database_url: str, files_dir: Path, engine: Engine
) -> None:
    create_legacy_database(database_url, version=None)
    with pytest.raises(StorageError, match="schema_version table .* is empty"):
        migrate(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE schema_version"))
    with pytest.raises(StorageError, match="has chatface tables .* but no"):
        Store(database_url, files_dir)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT COUNT(*) FROM users")).scalar_one() == 1
    assert VERSION_TABLE not in sa.inspect(engine).get_table_names()


def test_two_heads_are_refused(engine: Engine, add_revision: AddRevision) -> None:
    add_revision(NEXT, HEAD, "def upgrade():\n    pass\n")
    versions = add_revision(AFTER_NEXT, HEAD, "def upgrade():\n    pass\n")
    with pytest.raises(StorageError, match="2 heads"):
        migrate(engine, [versions])
    assert sa.inspect(engine).get_table_names() == []


def test_processes_starting_at_once_create_the_schema_once(
    database_url: str, files_dir: Path
) -> None:
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            Store(database_url, files_dir).close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_pending_upgrade_says_what_migrate_would_do_and_changes_nothing(
    database_url: str, files_dir: Path, engine: Engine
) -> None:
    assert pending_upgrade(engine) == "empty"
    assert not set(sa.inspect(engine).get_table_names()) & (OUR_TABLES | {VERSION_TABLE})
    create_legacy_database(database_url)
    assert pending_upgrade(engine) == "v1"
    assert "schema_version" in sa.inspect(engine).get_table_names()  # still the old schema
    migrate(engine)
    assert pending_upgrade(engine) is None
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00d'"))
    with pytest.raises(StorageError, match="revision f00d.*newer chatface"):
        pending_upgrade(engine)

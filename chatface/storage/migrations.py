"""Versioned schema migrations for the chatface database.

The ``schema_version`` table holds one integer. ``MIGRATIONS`` lists every version in
order; opening a store calls :func:`migrate`, which

* creates all tables in a database that has none of ours and stamps the latest version,
* upgrades an older database one migration per transaction (after copying a SQLite file
  to ``<db>.bak-v<old>``), so a failing step leaves the last good version behind,
* refuses a database newer than this code, or one with our tables but no version.

To change the schema: edit :mod:`chatface.storage.models` (what a fresh database gets)
and append a :class:`Migration` that brings an existing database to the same shape.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from chatface.errors import StorageError
from chatface.storage.models import TABLES, SchemaVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One step of the schema: ``upgrade`` turns version ``version - 1`` into ``version``."""

    version: int
    description: str
    upgrade: Callable[[Connection], None]


def _baseline(connection: Connection) -> None:
    """Version 1 is the first schema; fresh databases get it from the models directly.

    Nothing can be older than version 1, so this never runs on a real database.
    """


MIGRATIONS: list[Migration] = [
    Migration(1, "baseline: users, conversations, faces, edits, messages", _baseline),
]


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """The version a database has after all ``migrations`` ran."""
    return migrations[-1].version if migrations else 0


def _check_sequence(migrations: Sequence[Migration]) -> None:
    # A gap or a duplicate would silently skip a step on some databases; fail loudly instead.
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, ... in order; got {versions}")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets the bots read while a render result is being written.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get("chatface_write", True)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def prepare_sqlite(engine: Engine) -> None:
    """Make a SQLite engine enforce foreign keys and run real transactions (idempotent).

    Python's sqlite3 (before 3.12) emits no BEGIN before DDL or SELECT, so a failing
    migration would not roll back and reads would not be repeatable; SQLAlchemy emits
    BEGIN itself instead. Writers take the write lock up front (BEGIN IMMEDIATE) because
    two writers that both started by reading would deadlock upgrading their locks; a
    connection with the execution option ``chatface_write=False`` only reads.
    Call it before the engine's first connection so the pragmas apply to every one.
    """
    if engine.dialect.name != "sqlite" or sa.event.contains(engine, "begin", _sqlite_on_begin):
        return
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)


def _describe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _our_table_names() -> set[str]:
    return {model.__table__.name for model in TABLES}  # type: ignore[attr-defined]


def read_version(connection: Connection) -> int | None:
    """The stored schema version, or None when the table has no row."""
    row = connection.execute(sa.select(SchemaVersion.version).where(SchemaVersion.id == 1))
    return row.scalar_one_or_none()


def _create_fresh(engine: Engine, version: int) -> None:
    with engine.begin() as connection:
        tables = [model.__table__ for model in TABLES]  # type: ignore[attr-defined]
        SQLModel.metadata.create_all(connection, tables=tables)
        connection.execute(sa.insert(SchemaVersion).values(id=1, version=version))
    logger.info("Created the chatface schema at version %d in %s", version, _describe(engine))


def sqlite_path(engine: Engine) -> Path | None:
    """The file behind a SQLite engine, or None for other backends and in-memory ones."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def backup_sqlite(engine: Engine, old_version: int) -> Path | None:
    """Copy a SQLite database to ``<db>.bak-v<old_version>`` before it is migrated.

    Uses SQLite's online backup API rather than a file copy, because with WAL enabled
    recent commits may still live in the ``-wal`` file next to the database.
    """
    path = sqlite_path(engine)
    if path is None:
        return None
    backup = path.with_name(f"{path.name}.bak-v{old_version}")
    source = sqlite3.connect(path)
    try:
        target = sqlite3.connect(backup)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    logger.info("Backed up %s to %s before migrating", path, backup)
    return backup


def _apply(engine: Engine, migration: Migration, backup: Path | None) -> None:
    expected = migration.version - 1
    try:
        with engine.begin() as connection:
            migration.upgrade(connection)
            # The version guard makes a second process migrating at the same time fail
            # here instead of applying the same step twice.
            result = connection.execute(
                sa.update(SchemaVersion)
                .where(SchemaVersion.id == 1, SchemaVersion.version == expected)
                .values(version=migration.version)
            )
            if result.rowcount != 1:
                raise StorageError(
                    f"The database left version {expected} while migrating to "
                    f"{migration.version}; is another chatface process migrating it?"
                )
    except StorageError:
        raise
    except Exception as exc:
        kept = f" A copy from before migrating is at {backup}." if backup else ""
        raise StorageError(
            f"Migrating the database {_describe(engine)} to version {migration.version} "
            f"({migration.description}) failed: {exc}. The database was left at version "
            f"{expected}.{kept}"
        ) from exc
    logger.info("Migrated the database to version %d: %s", migration.version, migration.description)


def migrate(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database behind ``engine`` to the latest version; return that version.

    A SQLite engine is first given real transactions (:func:`prepare_sqlite`), without
    which a failing migration's ALTER TABLE would stay applied.
    """
    _check_sequence(migrations)
    prepare_sqlite(engine)
    latest = latest_version(migrations)
    existing = set(sa.inspect(engine).get_table_names())
    if SchemaVersion.__tablename__ not in existing:
        found = sorted(existing & _our_table_names())
        if found:
            raise StorageError(
                f"The database {_describe(engine)} has chatface tables ({', '.join(found)}) "
                "but no schema_version table, so its schema is unknown. Restore a backup, "
                "or point storage.url at an empty database."
            )
        _create_fresh(engine, latest)
        return latest

    with engine.connect() as connection:
        current = read_version(connection)
    if current is None:
        raise StorageError(
            f"The schema_version table of {_describe(engine)} is empty, so its schema is "
            "unknown. Restore a backup, or point storage.url at an empty database."
        )
    if current > latest:
        raise StorageError(
            f"The database {_describe(engine)} has schema version {current}, but this "
            f"chatface only knows versions up to {latest}. Upgrade chatface "
            "(pip install -U chatface) to use it."
        )
    if current == latest:
        return current

    backup = backup_sqlite(engine, current)
    for migration in migrations[current:]:
        _apply(engine, migration, backup)
    return latest

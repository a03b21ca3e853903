"""What a SQLite database needs beyond SQLAlchemy's defaults: real transactions, foreign
keys, and a consistent copy of the file before its schema is upgraded."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from chatface.errors import StorageError

logger = logging.getLogger(__name__)


WAL_WAIT_S = 30.0  # as long as a connection waits for a lock (the store's sqlite timeout)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets the bots read while a render result is being written. Switching a new
    # file to WAL needs it to itself, and SQLite answers "locked" at once instead of
    # waiting when another process is doing the same: wait here.
    deadline = time.monotonic() + WAL_WAIT_S
    while cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
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


def sqlite_path(engine: Engine) -> Path | None:
    """The file behind a SQLite engine, or None for other backends and in-memory ones."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def backup_sqlite(engine: Engine, label: str) -> Path | None:
    """Copy a SQLite database to ``<db>.bak-<label>`` before its schema is upgraded.

    ``label`` names the schema being left (``v1`` for the hand-written runner's version
    1, else an Alembic revision id). Uses SQLite's online backup API rather than a file
    copy, because with WAL enabled recent commits may still live in the ``-wal`` file;
    it reads the last committed state, so it may run while the upgrade holds the write
    lock but has not written yet.
    """
    path = sqlite_path(engine)
    if path is None:
        return None
    backup = path.with_name(f"{path.name}.bak-{label}")
    source = sqlite3.connect(path)
    try:
        target = sqlite3.connect(backup)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    logger.info("Backed up %s to %s before upgrading its schema", path, backup)
    return backup


@contextmanager
def foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Turn foreign keys off for a schema upgrade on ``connection``, checking them after.

    Alembic's batch mode on SQLite copies a table into a new one and drops the old one;
    with foreign keys on, dropping a parent table deletes its rows first and breaks its
    children. SQLite's documented procedure for such changes is: foreign keys off (only
    possible outside a transaction), change, ``PRAGMA foreign_key_check``, commit, on
    again. Enter this before the transaction begins and check with
    :func:`check_foreign_keys` before committing. Other backends pass through.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    if connection.in_transaction():
        raise RuntimeError("foreign keys can only be switched off outside a transaction")
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        try:
            raw.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error:
            # A pooled connection without foreign keys would corrupt data silently later.
            connection.invalidate()
            raise


def check_foreign_keys(connection: Connection) -> None:
    """Raise StorageError when rows break a foreign key (SQLite only; call in the upgrade)."""
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        shown = ", ".join(f"{row[0]} rowid {row[1]} -> {row[2]}" for row in broken[:5])
        raise StorageError(
            f"The schema upgrade left {len(broken)} rows pointing at missing rows ({shown})."
        )

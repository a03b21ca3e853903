"""Bring a database to the schema this chatface expects; every ``Store`` does it on opening.

The revisions are Alembic scripts (:mod:`chatface.storage.migrations`); the revision a
database has reached is in the ``chatface_alembic_version`` table. :func:`migrate`

* gives a database without chatface's tables every revision (which creates them),
* leaves a database at the latest revision ("head") alone,
* upgrades one at an older revision, after copying a SQLite file to ``<db>.bak-<rev>``,
* adopts a database of the hand-written runner that came before Alembic (its
  ``schema_version`` table at version 1, the schema of the first revision): it copies a
  SQLite file to ``<db>.bak-v1``, drops ``schema_version`` and records the first
  revision instead, then upgrades as above,
* refuses a database at a revision this code does not know (a newer chatface wrote it),
  and one with chatface's tables but no record of their schema.

:func:`pending_upgrade` tells which of these would happen, changing nothing.

Everything, the check included, happens in one transaction that holds the database's
write lock (SQLite's BEGIN IMMEDIATE, a PostgreSQL advisory lock), so two processes
starting at once upgrade once, and a failing revision leaves the database exactly as it
was. SQLite rolls DDL back as well as PostgreSQL does; its backup is for what a
transaction cannot undo: a revision that succeeds but mangles data, or going back to an
older chatface, which refuses the upgraded schema.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from chatface.errors import StorageError
from chatface.storage.migrations import OUR_TABLES, VERSION_TABLE, make_config
from chatface.storage.sqlite import (
    backup_sqlite,
    check_foreign_keys,
    foreign_keys_off,
    prepare_sqlite,
)

logger = logging.getLogger(__name__)

# The hand-written runner's table and the revision each of its versions equals. Its
# only release had version 1; the first Alembic revision creates exactly that schema.
LEGACY_TABLE = "schema_version"
BASELINE_REVISION = "4f6c1d2e8a90"
LEGACY_VERSIONS = {1: BASELINE_REVISION}

# Any fixed number: PostgreSQL advisory locks are keyed by a bigint per database.
_PG_LOCK_KEY = 0x63686174666163  # "chatfac"


@dataclass(frozen=True)
class _Upgrade:
    """What :func:`migrate` found: the schema to leave, and how it is recorded."""

    label: str  # names the backup and the messages: a revision id, "v1", or "empty"
    legacy_version: int | None = None
    has_data: bool = True


def _describe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _head(script: ScriptDirectory) -> str:
    heads = script.get_heads()
    if len(heads) != 1:
        # Two heads mean two revisions were written on top of the same one; merge them
        # (alembic merge) before shipping, or databases would stop at either.
        raise StorageError(f"chatface's migration scripts have {len(heads)} heads: {heads}.")
    return heads[0]


def head_revision(extra_version_locations: Sequence[Path] = ()) -> str:
    """The revision a database has once :func:`migrate` upgraded it."""
    return _head(ScriptDirectory.from_config(make_config(extra_version_locations)))


def _lock(connection: Connection) -> None:
    # SQLite took its write lock with BEGIN IMMEDIATE (see prepare_sqlite); other
    # backends than these two rely on their DDL failing if two processes race.
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))


def _legacy_version(connection: Connection, where: str) -> int:
    row = connection.execute(sa.text(f"SELECT version FROM {LEGACY_TABLE} WHERE id = 1"))
    version = row.scalar_one_or_none()
    if version is None:
        raise StorageError(
            f"The {LEGACY_TABLE} table of {where} is empty, so its schema is unknown. "
            "Restore a backup, or point storage.url at an empty database."
        )
    if version not in LEGACY_VERSIONS:
        raise StorageError(
            f"The database {where} has schema version {version}, but this chatface only "
            f"knows versions up to {max(LEGACY_VERSIONS)}. Upgrade chatface "
            "(pip install -U chatface) to use it."
        )
    return int(version)


def _plan(connection: Connection, script: ScriptDirectory, where: str) -> _Upgrade | None:
    """What to do with the database: None when it is at head already; refusals raise."""
    head = _head(script)
    options = {"version_table": VERSION_TABLE, "transactional_ddl": True}
    context = MigrationContext.configure(connection, opts=options)
    current = context.get_current_heads()
    if current:
        known = {revision.revision for revision in script.walk_revisions()}
        unknown = [revision for revision in current if revision not in known]
        if unknown:
            raise StorageError(
                f"The database {where} is at schema revision {', '.join(unknown)}, which "
                "this chatface does not know: a newer chatface wrote it. Upgrade chatface "
                "(pip install -U chatface) to use it."
            )
        if set(current) == {head}:
            return None
        return _Upgrade(label="+".join(sorted(current)))
    tables = set(sa.inspect(connection).get_table_names())
    if LEGACY_TABLE in tables:
        version = _legacy_version(connection, where)
        return _Upgrade(label=f"v{version}", legacy_version=version)
    found = sorted(tables & OUR_TABLES)
    if found:
        raise StorageError(
            f"The database {where} has chatface tables ({', '.join(found)}) but no "
            f"{VERSION_TABLE} or {LEGACY_TABLE} table, so their schema is unknown. "
            "Restore a backup, or point storage.url at an empty database."
        )
    return _Upgrade(label="empty", has_data=False)


def _run(config: Config, connection: Connection, plan: _Upgrade, head: str) -> None:
    config.attributes["connection"] = connection
    if plan.legacy_version is not None:
        # Alembic's table replaces the old one; keeping both would leave two records of
        # the schema that could disagree after the next revision.
        connection.execute(sa.text(f"DROP TABLE {LEGACY_TABLE}"))
        command.stamp(config, LEGACY_VERSIONS[plan.legacy_version])
    command.upgrade(config, head)
    check_foreign_keys(connection)


def pending_upgrade(engine: Engine) -> str | None:
    """What :func:`migrate` would do to the database behind ``engine``, without doing it:
    None when it is at the latest revision, else the schema it would upgrade from (a
    revision id, ``v1``, or ``empty`` for a database without chatface's tables). Raises
    StorageError for a database that :func:`migrate` would refuse; only reads.
    """
    script = ScriptDirectory.from_config(make_config())
    with engine.connect() as connection:
        plan = _plan(connection, script, _describe(engine))
    return None if plan is None else plan.label


def migrate(engine: Engine, extra_version_locations: Sequence[Path] = ()) -> str:
    """Bring the database behind ``engine`` to the latest revision and return its id.

    ``extra_version_locations`` are folders of further revisions on top of the shipped
    ones; the tests use them to try upgrades that chatface has not needed yet.
    """
    prepare_sqlite(engine)
    config = make_config(extra_version_locations)
    script = ScriptDirectory.from_config(config)
    head = _head(script)
    where = _describe(engine)
    with engine.connect() as connection, foreign_keys_off(connection), connection.begin():
        _lock(connection)
        plan = _plan(connection, script, where)
        if plan is None:
            return head
        backup = backup_sqlite(engine, plan.label) if plan.has_data else None
        try:
            _run(config, connection, plan, head)
        except Exception as exc:
            kept = f" A copy from before the upgrade is at {backup}." if backup else ""
            raise StorageError(
                f"Upgrading the database {where} from schema {plan.label} to {head} failed: "
                f"{exc}. It was rolled back and is still at {plan.label}.{kept}"
            ) from exc
    if plan.has_data:
        logger.info("Upgraded the database %s from schema %s to %s", where, plan.label, head)
    else:
        logger.info("Created the chatface schema at revision %s in %s", head, where)
    return head

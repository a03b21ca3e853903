"""The revisions against the models and the old runner, on SQLite and PostgreSQL: the
first revision is the runner's schema exactly, autogenerate finds nothing missing from
the revisions, and the scripts and developer commands are where they are documented."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from chatface.storage import head_revision, migrate
from chatface.storage.migrations import (
    OUR_TABLES,
    context_options,
    make_config,
    script_location,
)
from chatface.storage.models import TABLES
from chatface.storage.schema import BASELINE_REVISION
from tests.storage.legacy import create_legacy_database

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engines(database_url: str, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two empty databases on the same backend."""
    if database_url.startswith("sqlite"):
        other = f"sqlite:///{tmp_path / 'other.db'}"
        Path(sa.make_url(database_url).database or "").parent.mkdir(parents=True)
    else:
        other = str(
            sa.make_url(database_url).set(database=f"{sa.make_url(database_url).database}b")
        )
    first, second = sa.create_engine(database_url), sa.create_engine(other)
    if second.dialect.name == "postgresql":
        with first.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
            admin.exec_driver_sql(f"CREATE DATABASE {second.url.database}")
    try:
        yield first, second
    finally:
        first.dispose()
        second.dispose()
        if second.dialect.name == "postgresql":
            with first.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
                admin.exec_driver_sql(f"DROP DATABASE {second.url.database} WITH (FORCE)")


def snapshot(engine: Engine, tables: Collection[str] = OUR_TABLES) -> dict[str, Any]:
    """Everything about chatface's ``tables`` that reflection sees, names included."""
    inspector = sa.inspect(engine)
    result: dict[str, Any] = {}
    for table in sorted(tables):
        columns = [
            (c["name"], str(c["type"]), c["nullable"], c.get("default"))
            for c in inspector.get_columns(table)
        ]
        foreign_keys = sorted(
            (fk["name"] or "", *fk["constrained_columns"], fk["referred_table"])
            for fk in inspector.get_foreign_keys(table)
        )
        result[table] = {
            "columns": columns,
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": foreign_keys,
            "unique": sorted(
                (u["name"] or "", *u["column_names"])
                for u in inspector.get_unique_constraints(table)
            ),
            "checks": sorted(
                (c["name"], c["sqltext"]) for c in inspector.get_check_constraints(table)
            ),
            "indexes": sorted(
                (i["name"], *i["column_names"], i["unique"]) for i in inspector.get_indexes(table)
            ),
        }
    if engine.dialect.name == "sqlite":
        # SQLite keeps each statement's text, AUTOINCREMENT included: compare it exactly.
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE tbl_name IN "
                f"({', '.join(repr(t) for t in sorted(OUR_TABLES))})"
            )
            result["sql"] = dict(sorted(rows.all()))
    return result


def differences(engine: Engine) -> list[Any]:
    """What autogenerate would put into a new revision for this database."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=context_options())
        return compare_metadata(context, SQLModel.metadata)


def test_first_revision_is_the_old_runners_schema(engines: tuple[Engine, Engine]) -> None:
    legacy, alembic = engines
    create_legacy_database(str(legacy.url.render_as_string(hide_password=False)))
    config = make_config()
    with alembic.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, BASELINE_REVISION)
    baseline = ("users", "conversations", "faces", "edits", "messages")  # the runner's tables
    assert snapshot(alembic, baseline) == snapshot(legacy, baseline)


def test_autogenerate_finds_no_difference(engines: tuple[Engine, Engine]) -> None:
    migrated, created = engines
    migrate(migrated)
    assert differences(migrated) == []
    # The same check from the other side, for what autogenerate does not compare (CHECK
    # constraints, SQLite's AUTOINCREMENT): the revisions build what the models describe.
    tables = [model.__table__ for model in TABLES]  # type: ignore[attr-defined]
    SQLModel.metadata.create_all(created, tables=tables)
    assert snapshot(migrated) == snapshot(created)


def test_autogenerate_sees_a_model_change(tmp_path: Path) -> None:
    # Guards the check above against passing because nothing is compared at all.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'chatface.db'}")
    try:
        migrate(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP INDEX ix_edits_face_id")
            connection.exec_driver_sql("CREATE TABLE someone_elses (x INTEGER)")
        found = differences(engine)
    finally:
        engine.dispose()
    assert [diff[0] for diff in found] == ["add_index"]


def test_scripts_ship_inside_the_package() -> None:
    location = script_location()
    assert location == REPO / "chatface" / "storage" / "migrations"
    for name in ("env.py", "script.py.mako", "versions/__init__.py"):
        assert (location / name).is_file(), name
    script = ScriptDirectory.from_config(make_config())
    revisions = list(script.walk_revisions())
    assert revisions[-1].revision == BASELINE_REVISION
    assert revisions[-1].down_revision is None
    assert script.get_heads() == [head_revision()]
    for revision in revisions:
        assert Path(revision.path).parent == location / "versions"


def test_developer_check_command_passes() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "chatface.storage.migrations", "check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr

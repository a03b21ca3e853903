"""The Alembic environment of chatface: ``env.py``, the revision template and ``versions/``.

Alembic is configured here in code, so nobody needs an ``alembic.ini``: :func:`make_config`
finds the scripts with :mod:`importlib.resources` (they ship inside the package), and
:func:`context_options` is what ``env.py``, the upgrade on start
(:mod:`chatface.storage.schema`) and the tests all give Alembic. Developers create a
revision with ``python -m chatface.storage.migrations revision -m "..."`` (see
docs/architecture.md, "Schema migrations").
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic.config import Config
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from chatface.errors import StorageError
from chatface.storage.models import TABLES, UTCDateTime

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext

# Not Alembic's default ``alembic_version``: a PostgreSQL database may be shared with
# another application that uses Alembic, and its revision must never be taken for ours.
VERSION_TABLE = "chatface_alembic_version"
OUR_TABLES = frozenset(model.__table__.name for model in TABLES)  # type: ignore[attr-defined]


def script_location() -> Path:
    """The folder holding ``env.py`` and ``versions/``, inside the installed package."""
    location = importlib.resources.files(__name__)
    if not isinstance(location, Path):
        # Alembic reads the scripts as files; a zipped install has none to read.
        raise StorageError(
            f"chatface's migration scripts are not files on disk ({location}); "
            "install chatface as a regular (unzipped) package."
        )
    return location


def make_config(extra_version_locations: Sequence[Path] = (), url: str | None = None) -> Config:
    """An Alembic configuration for chatface's scripts, built without an ini file.

    ``extra_version_locations`` adds folders of further revisions (the tests use it to
    build on the shipped ones); ``url`` is only needed when no connection is passed in
    ``config.attributes["connection"]``, as with the developer commands.
    """
    location = script_location()
    config = Config()
    config.set_main_option("script_location", str(location))
    locations = [location / "versions", *extra_version_locations]
    # os.pathsep, not spaces, so folders with spaces in their names work too.
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(p) for p in locations))
    # Date first, so the files list in the order they were written.
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Compare only chatface's tables: the database and SQLModel.metadata may hold others."""
    if type_ == "table":
        return name in OUR_TABLES
    return True


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render model-only column types as plain SQLAlchemy types in new revisions.

    A revision is a frozen snapshot: it must not import the models it was made from
    (they will change), and the database stores these as VARCHAR and TIMESTAMP anyway.
    """
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def context_options() -> dict[str, Any]:
    """Options for ``EnvironmentContext.configure`` / ``MigrationContext.configure``."""
    return {
        "target_metadata": SQLModel.metadata,
        "version_table": VERSION_TABLE,
        "include_object": include_object,
        "render_item": render_item,
        "compare_type": True,
        "compare_server_default": True,
        # Every revision must also run on SQLite, which alters tables by copying them
        # (batch mode); on PostgreSQL the same batch operations are plain ALTERs.
        "render_as_batch": True,
        # SQLite DDL is transactional once SQLAlchemy emits BEGIN itself, which
        # chatface.storage.sqlite.prepare_sqlite arranges; Alembic assumes otherwise.
        "transactional_ddl": True,
    }


__all__ = [
    "OUR_TABLES",
    "VERSION_TABLE",
    "context_options",
    "include_object",
    "make_config",
    "render_item",
    "script_location",
]

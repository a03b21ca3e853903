"""Changing a table's columns on SQLite, for the migrations that need it.

SQLite's ALTER TABLE ADD COLUMN would put a column after the constraints, and a renamed
table's name is stored quoted, so the schema text would differ from what create_all()
writes. A migration instead builds the table again under its own name with
:func:`rebuild_table`, keeping its rows and its AUTOINCREMENT counter (ids are never
reused).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from alembic import op


def rebuild_table(
    name: str, create: Callable[[], None], columns: str, indexes: Sequence[tuple[str, str]]
) -> None:
    """Build table ``name`` again with ``create()``, copying the ``columns`` (a comma-
    separated list) of its rows; ``indexes`` are (index name, column) pairs."""
    old = f"_{name}_old"
    for index, _ in indexes:
        op.drop_index(index, table_name=name)
    op.rename_table(name, old)
    create()
    op.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {old}")
    op.execute(
        f"UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE "
        f"name = '{old}') WHERE name = '{name}' AND EXISTS (SELECT 1 FROM "
        f"sqlite_sequence WHERE name = '{old}')"
    )
    op.drop_table(old)
    for index, column in indexes:
        op.create_index(index, name, [column], unique=False)

"""edits record how their result was rendered

The DDIM steps and the condition schedule of each edit's rendered result (NULL: no
result, or one rendered before this revision), so that a later edit of the same face
that lands on the same state is served a copy of it instead of a new render.

Revision ID: 450206602a99
Revises: 3d657e2e8a42
Create Date: 2026-11-29 11:21:02.205135
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chatface.storage.migrations.sqlite import rebuild_table

# revision identifiers, used by Alembic.
revision: str = "450206602a99"
down_revision: str | Sequence[str] | None = "3d657e2e8a42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "id, face_id, seq, plan_json, state_json, result_path, created_at, identity"
INDEXES = (("ix_edits_face_id", "face_id"),)


def _edits_table(*extra: sa.Column) -> None:
    op.create_table(
        "edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("face_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("plan_json", sa.Text(), nullable=False),
        sa.Column("state_json", sa.Text(), nullable=False),
        sa.Column("result_path", sa.String(length=1024), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("identity", sa.Float(), nullable=True),
        *extra,
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("face_id", "seq"),
        sa.CheckConstraint("seq >= 1", name="ck_edits_seq"),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"]),
        sqlite_autoincrement=True,
    )


def _rebuild_sqlite(*extra: sa.Column) -> None:
    rebuild_table("edits", lambda: _edits_table(*extra), COLUMNS, INDEXES)


def _columns() -> list[sa.Column]:
    return [
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("schedule", sa.String(length=64), nullable=True),
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(*_columns())
    else:
        for column in _columns():
            op.add_column("edits", column)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite()
    else:
        op.drop_column("edits", "schedule")
        op.drop_column("edits", "steps")

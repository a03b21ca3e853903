"""edits record their identity similarity

The cosine similarity of the identity model's embeddings of the original face and the
edit's result, measured after each render (NULL: not measured).

Revision ID: 3d657e2e8a42
Revises: ed7f68ad9aac
Create Date: 2026-11-29 09:33:45.793389
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chatface.storage.migrations.sqlite import rebuild_table

# revision identifiers, used by Alembic.
revision: str = "3d657e2e8a42"
down_revision: str | Sequence[str] | None = "ed7f68ad9aac"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "id, face_id, seq, plan_json, state_json, result_path, created_at"
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
        *extra,
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("face_id", "seq"),
        sa.CheckConstraint("seq >= 1", name="ck_edits_seq"),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"]),
        sqlite_autoincrement=True,
    )


def _rebuild_sqlite(*extra: sa.Column) -> None:
    rebuild_table("edits", lambda: _edits_table(*extra), COLUMNS, INDEXES)


def upgrade() -> None:
    identity = sa.Column("identity", sa.Float(), nullable=True)
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(identity)
    else:
        op.add_column("edits", identity)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite()
    else:
        op.drop_column("edits", "identity")

"""jobs record the bot process that carries them out

The run id of the bot process that owns each job (NULL: written before this revision,
or outside a bot), so that of several bot processes starting at once on one database
only the one that claims a job left unfinished carries it out.

Revision ID: a7df27d8e2a7
Revises: 450206602a99
Create Date: 2026-11-29 14:03:27.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chatface.storage.migrations.sqlite import rebuild_table

# revision identifiers, used by Alembic.
revision: str = "a7df27d8e2a7"
down_revision: str | Sequence[str] | None = "450206602a99"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "id, conversation_id, kind, state, photo_path, face_id, edit_id, steps, schedule, "
    "reply, error, created_at, finished_at"
)
INDEXES = (("ix_jobs_conversation_id", "conversation_id"), ("ix_jobs_state", "state"))


def _jobs_table(*extra: sa.Column) -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("photo_path", sa.String(length=1024), nullable=True),
        sa.Column("face_id", sa.Integer(), nullable=True),
        sa.Column("edit_id", sa.Integer(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("schedule", sa.String(length=64), nullable=True),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *extra,
        sa.CheckConstraint("kind IN ('photo', 'render')", name="ck_jobs_kind"),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="ck_jobs_state"
        ),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )


def _rebuild_sqlite(*extra: sa.Column) -> None:
    rebuild_table("jobs", lambda: _jobs_table(*extra), COLUMNS, INDEXES)


def _owner() -> sa.Column:
    return sa.Column("owner", sa.String(length=32), nullable=True)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(_owner())
    else:
        op.add_column("jobs", _owner())


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite()
    else:
        op.drop_column("jobs", "owner")

"""Database tables of chatface: users, their conversations, faces, edit history, messages,
the jobs a bot owes its users and the platform updates it has handled.

These are sqlmodel classes with ``table=True``. The store (:mod:`chatface.storage.store`)
hands them out detached, so callers read attributes freely but never lazy-load anything.
Changing a table here means adding an Alembic revision that brings existing databases to
the same shape (``python -m chatface.storage.migrations revision -m "..."``; see
docs/architecture.md, "Schema migrations").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


def utc_now() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC.

    SQLite has no timezone type and returns naive datetimes; PostgreSQL returns them in
    the session's time zone. Normalising here means callers on either backend compare
    and serialise the same values.
    """

    impl = sa.DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive time is ambiguous; refusing it catches the bug where it is created.
            raise ValueError(f"timestamps must be timezone-aware, got naive {value!r}")
        value = value.astimezone(UTC)
        # SQLite would store the offset-free text anyway; strip it so the text sorts right.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite would otherwise hand a deleted row's id to the next insert; ids that are never
# reused (as with PostgreSQL sequences) mean a new user never inherits a forgotten user's
# id, files dir or cache entries.
_AUTOINCREMENT = {"sqlite_autoincrement": True}


def _created_at() -> Any:
    return Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)


class User(SQLModel, table=True):
    """A person on one platform; the same person on Telegram and Discord is two users."""

    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("platform", "platform_user_id"), _AUTOINCREMENT)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)  # "telegram", "discord", "cli"
    platform_user_id: str = Field(max_length=255)
    created_at: datetime = _created_at()


class Conversation(SQLModel, table=True):
    """One chat of a user (a Telegram chat, a Discord channel, or "" for the CLI)."""

    __tablename__ = "conversations"
    __table_args__ = (sa.UniqueConstraint("user_id", "chat_id"), _AUTOINCREMENT)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    chat_id: str = Field(default="", max_length=255)
    # Deliberately not a foreign key: faces already point at conversations, and a cycle
    # of foreign keys makes table creation and deletion order-dependent on every backend.
    active_face_id: int | None = Field(default=None)
    created_at: datetime = _created_at()


class Face(SQLModel, table=True):
    """A face found in a photo, with everything needed to render edits of it again."""

    __tablename__ = "faces"
    __table_args__ = (sa.CheckConstraint("cursor >= 0", name="ck_faces_cursor"), _AUTOINCREMENT)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True)
    created_at: datetime = _created_at()
    source_name: str = Field(default="", max_length=255)
    # The original photo, relative to the files dir: edits are pasted back into it.
    photo_path: str | None = Field(default=None, max_length=1024)
    aligned_png: bytes = Field(sa_type=sa.LargeBinary)
    # JSON list of floats: the affine map from the aligned crop back to the photo.
    inverse_transform: str = Field(sa_type=sa.Text)
    # A safetensors blob with z_sem and x_T; opaque to storage (never a pickle).
    latents: bytes = Field(sa_type=sa.LargeBinary)
    backend: str = Field(max_length=64)
    weights_sha256: str = Field(max_length=64)
    # seq of the current edit; 0 means the original photo. Undo/redo only move this.
    cursor: int = Field(default=0)

    def inverse_affine(self) -> list[float]:
        """``inverse_transform`` decoded: the crop-to-photo affine as a list of floats."""
        return [float(v) for v in json.loads(self.inverse_transform)]


class Edit(SQLModel, table=True):
    """One step of a face's edit history."""

    __tablename__ = "edits"
    __table_args__ = (
        sa.UniqueConstraint("face_id", "seq"),
        sa.CheckConstraint("seq >= 1", name="ck_edits_seq"),
        _AUTOINCREMENT,
    )

    id: int | None = Field(default=None, primary_key=True)
    face_id: int = Field(foreign_key="faces.id", index=True)
    seq: int  # 1-based position in the face's history
    plan_json: str = Field(sa_type=sa.Text)
    state_json: str = Field(sa_type=sa.Text)  # full session state after this edit
    result_path: str | None = Field(default=None, max_length=1024)  # relative to files dir
    created_at: datetime = _created_at()
    # Identity similarity of the rendered result with the original face (cosine of the
    # identity model's embeddings); None: not measured (no render, or no model weights).
    identity: float | None = Field(default=None)
    # How the result was rendered (DDIM steps, condition schedule name), so a later edit
    # of the face that lands on the same state can be served a copy of it; None: no
    # result, or one rendered before this was recorded.
    steps: int | None = Field(default=None)
    schedule: str | None = Field(default=None, max_length=64)


class Message(SQLModel, table=True):
    """A line of the chat log, kept so planners can see recent turns."""

    __tablename__ = "messages"
    __table_args__ = (
        sa.CheckConstraint("role IN ('user', 'bot')", name="ck_messages_role"),
        _AUTOINCREMENT,
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True)
    role: str = Field(max_length=8)  # "user" or "bot"
    text: str = Field(sa_type=sa.Text)
    created_at: datetime = _created_at()


JOB_KINDS = ("photo", "render")
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
UNFINISHED = ("queued", "running")


class Job(SQLModel, table=True):
    """Work a bot owes a user: a photo to encode or an edit to render. Written before the
    work starts, so a bot restarted after a crash finishes or answers every unfinished one."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN {JOB_KINDS}", name="ck_jobs_kind"),
        sa.CheckConstraint(f"state IN {JOB_STATES}", name="ck_jobs_state"),
        _AUTOINCREMENT,
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True)
    kind: str = Field(max_length=8)
    state: str = Field(default="queued", max_length=16, index=True)
    # photo: the stored photo (relative to the files dir); render: the face and the edit
    # whose state it renders. Plain ids: an edit can be dropped by a later undo branch.
    photo_path: str | None = Field(default=None, max_length=1024)
    face_id: int | None = Field(default=None)
    edit_id: int | None = Field(default=None)
    steps: int | None = Field(default=None)
    schedule: str | None = Field(default=None, max_length=64)  # asked for by the plan
    reply: str = Field(default="", sa_type=sa.Text)  # the text sent with the result
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _created_at()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The bot process (its run id) carrying the job out: another process recovers the
    # job only by claiming it, so two that start at once never both do it.
    owner: str | None = Field(default=None, max_length=32)


class Update(SQLModel, table=True):
    """A platform update (a Telegram update, a Discord interaction or message) already
    handled: a redelivered one is recognised by its key and never runs twice."""

    __tablename__ = "updates"
    __table_args__ = (sa.UniqueConstraint("key"), _AUTOINCREMENT)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    key: str = Field(max_length=255)  # "<platform>/<platform's id>"
    created_at: datetime = Field(
        default_factory=utc_now, sa_type=UTCDateTime, nullable=False, index=True
    )


# Every table chatface owns, parents before children. SQLModel.metadata is shared with
# any other sqlmodel table in the process, so migrations compare only these.
TABLES: tuple[type[SQLModel], ...] = (User, Conversation, Face, Edit, Message, Job, Update)

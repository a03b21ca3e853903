"""Small query helpers the store's modules share."""

from __future__ import annotations

from pathlib import PurePath
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select
from sqlmodel.sql.expression import SelectOfScalar

from chatface.storage.models import User

Row = TypeVar("Row", bound=SQLModel)


def check_relative(result_path: str) -> None:
    # Result paths are joined to the files dir and deleted on undo branches and /forget,
    # so one that escapes the files dir could make us delete someone else's file.
    path = PurePath(result_path)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"result_path must be relative to the files dir, got {result_path!r}")


def user_query(platform: str, platform_user_id: str) -> SelectOfScalar[User]:
    return select(User).where(User.platform == platform, User.platform_user_id == platform_user_id)


def get_or_create(session: Session, query: SelectOfScalar[Row], new: Row) -> Row:
    """The row ``query`` finds, else ``new`` inserted (``query`` must hit a unique key)."""
    found = session.exec(query).first()
    if found is not None:
        return found
    try:
        # A savepoint, so losing a race to another process only undoes this insert.
        with session.begin_nested():
            session.add(new)
    except IntegrityError:
        return session.exec(query).one()
    return new

"""The ``Store``: every read and write chatface makes to its database and files dir.

Each public method runs in one database transaction, so a crash half-way leaves the
previous state intact, and returns detached rows (plain attribute access, no lazy
loading). Files (rendered results) are deleted only after the transaction that
dropped their rows has committed: a crash can leave a stray file, never a row that
points at a missing one.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from chatface.errors import StorageError
from chatface.storage.models import (
    Conversation,
    Edit,
    Face,
    Job,
    Message,
    Update,
    User,
)
from chatface.storage.rows import check_relative, get_or_create, user_query
from chatface.storage.schema import migrate
from chatface.storage.sqlite import prepare_sqlite, sqlite_path
from chatface.storage.turns import EMPTY_STATE, Turns

if TYPE_CHECKING:
    from chatface.config import Config

logger = logging.getLogger(__name__)

ROLES = ("user", "bot")


class Store(Turns):
    """Users, conversations, faces, edit history with undo/redo, the message log, and
    (from :class:`~chatface.storage.turns.Turns`) chat turns and jobs."""

    def __init__(self, url: str, files_dir: Path) -> None:
        self.files_dir = Path(files_dir)
        url_obj = sa.make_url(url)
        options: dict[str, Any] = {}
        if url_obj.get_backend_name() == "sqlite":
            database = url_obj.database
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"timeout": 30}
        else:
            # Bots hold the store for days; a server restart should not break the next call.
            options["pool_pre_ping"] = True
        self._engine = sa.create_engine(url_obj, **options)
        prepare_sqlite(self._engine)
        self._reader = self._engine.execution_options(chatface_write=False)
        shown = url_obj.render_as_string(hide_password=True)
        try:
            # The Alembic revision the database is at: the latest this code knows.
            self.schema_revision = migrate(self._engine)
        except OperationalError as exc:
            self._engine.dispose()
            raise StorageError(f"Cannot open the database {shown}: {exc.orig}") from exc
        except BaseException:
            self._engine.dispose()
            raise
        logger.debug("Opened %s at schema revision %s", shown, self.schema_revision)

    @classmethod
    def from_config(cls, config: Config) -> Store:
        """The store the settings name: ``storage.url`` and ``<data_dir>/files``."""
        return cls(config.database_url, config.data_dir / "files")

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def database_file(self) -> Path | None:
        """The SQLite file, or None for a server database."""
        return sqlite_path(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One session in one transaction: committed on success, rolled back on any error."""
        bind = self._engine if write else self._reader
        with Session(bind, expire_on_commit=False) as session, session.begin():
            yield session

    # -- users and conversations -------------------------------------------------------

    def get_or_create_user(self, platform: str, platform_user_id: str) -> User:
        with self._transaction() as session:
            query = user_query(platform, platform_user_id)
            new = User(platform=platform, platform_user_id=platform_user_id)
            return get_or_create(session, query, new)

    def find_user(self, platform: str, platform_user_id: str) -> User | None:
        with self._transaction(write=False) as session:
            query = user_query(platform, platform_user_id)
            return session.exec(query).first()

    def users(self) -> list[User]:
        with self._transaction(write=False) as session:
            return list(session.exec(select(User).order_by(col(User.id))).all())

    def get_or_create_conversation(self, user_id: int, chat_id: str = "") -> Conversation:
        with self._transaction() as session:
            if session.get(User, user_id) is None:
                raise StorageError(f"No user with id {user_id}.")
            query = select(Conversation).where(
                Conversation.user_id == user_id, Conversation.chat_id == chat_id
            )
            return get_or_create(session, query, Conversation(user_id=user_id, chat_id=chat_id))

    def conversations(self, user_id: int) -> list[Conversation]:
        with self._transaction(write=False) as session:
            query = (
                select(Conversation)
                .where(Conversation.user_id == user_id)
                .order_by(col(Conversation.id))
            )
            return list(session.exec(query).all())

    # -- faces ---------------------------------------------------------------------------

    def add_face(
        self,
        conversation_id: int,
        *,
        aligned_png: bytes,
        inverse_transform: list[float],
        latents: bytes,
        backend: str,
        weights_sha256: str,
        source_name: str = "",
        photo_path: str | None = None,
    ) -> Face:
        """Store a new face and make it the conversation's active one."""
        if photo_path is not None:
            check_relative(photo_path)
        with self._transaction() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise StorageError(f"No conversation with id {conversation_id}.")
            face = Face(
                conversation_id=conversation_id,
                source_name=source_name,
                photo_path=photo_path,
                aligned_png=bytes(aligned_png),
                inverse_transform=json.dumps([float(v) for v in inverse_transform]),
                latents=bytes(latents),
                backend=backend,
                weights_sha256=weights_sha256,
            )
            session.add(face)
            session.flush()
            conversation.active_face_id = face.id
            session.add(conversation)
            return face

    def get_face(self, face_id: int) -> Face:
        with self._transaction(write=False) as session:
            return self._face(session, face_id)

    def active_face(self, conversation_id: int) -> Face | None:
        with self._transaction(write=False) as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None or conversation.active_face_id is None:
                return None
            return session.get(Face, conversation.active_face_id)

    def faces(self, conversation_id: int) -> list[Face]:
        with self._transaction(write=False) as session:
            query = (
                select(Face).where(Face.conversation_id == conversation_id).order_by(col(Face.id))
            )
            return list(session.exec(query).all())

    def face_of_photo(self, user_id: int, photo_path: str, backend: str) -> Face | None:
        """The user's newest face of the stored photo ``photo_path`` (relative to the
        files dir) encoded by ``backend``, or None."""
        with self._transaction(write=False) as session:
            conversation_ids = select(Conversation.id).where(Conversation.user_id == user_id)
            query = (
                select(Face)
                .where(
                    col(Face.conversation_id).in_(conversation_ids),
                    Face.photo_path == photo_path,
                    Face.backend == backend,
                )
                .order_by(col(Face.id).desc())
            )
            return session.exec(query).first()

    @staticmethod
    def _face(session: Session, face_id: int, *, lock: bool = False) -> Face:
        # FOR UPDATE serialises edits of one face on PostgreSQL (SQLite ignores it and
        # relies on BEGIN IMMEDIATE), so two quick messages cannot both take seq n+1.
        query = select(Face).where(Face.id == face_id)
        face = session.exec(query.with_for_update() if lock else query).first()
        if face is None:
            raise StorageError(
                f"There is no face with id {face_id}; it may have been deleted with /forget. "
                "Send a photo to start again."
            )
        return face

    # -- edit history ----------------------------------------------------------------------

    def append_edit(
        self,
        face_id: int,
        *,
        plan_json: str,
        state_json: str,
        result_path: str | None = None,
    ) -> Edit:
        """Add an edit after the current one; edits that could have been redone are dropped."""
        if result_path is not None:
            check_relative(result_path)
        with self._transaction() as session:
            edit, dropped_files = self._append(session, face_id, plan_json, state_json, result_path)
        self._remove_files(dropped_files)
        return edit

    def _append(
        self,
        session: Session,
        face_id: int,
        plan_json: str,
        state_json: str,
        result_path: str | None,
    ) -> tuple[Edit, list[str]]:
        face = self._face(session, face_id, lock=True)
        # Only the paths: loading the dropped rows as objects would leave stale instances
        # in the session after the bulk DELETE.
        branch = select(Edit.result_path).where(Edit.face_id == face_id, Edit.seq > face.cursor)
        dropped_files = [path for path in session.exec(branch).all() if path]
        session.exec(
            sa.delete(Edit)
            .where(Edit.face_id == face_id, Edit.seq > face.cursor)
            .execution_options(synchronize_session=False)
        )
        edit = Edit(
            face_id=face_id,
            seq=face.cursor + 1,
            plan_json=plan_json,
            state_json=state_json,
            result_path=result_path,
        )
        session.add(edit)
        session.flush()
        face.cursor = edit.seq
        session.add(face)
        session.flush()
        return edit, dropped_files

    def set_result(self, edit_id: int, result_path: str) -> Edit:
        """Record where the rendered image of an edit lives (relative to the files dir)."""
        check_relative(result_path)
        with self._transaction() as session:
            edit = session.get(Edit, edit_id)
            if edit is None:
                raise StorageError(f"No edit with id {edit_id}.")
            edit.result_path = result_path
            session.add(edit)
            return edit

    def current_edit(self, face_id: int) -> Edit | None:
        with self._transaction(write=False) as session:
            return self._current(session, self._face(session, face_id))

    def current_state_json(self, face_id: int) -> str:
        """The session state after the current edit; ``"{}"`` for the original photo."""
        edit = self.current_edit(face_id)
        return EMPTY_STATE if edit is None else edit.state_json

    @staticmethod
    def _current(session: Session, face: Face) -> Edit | None:
        if face.cursor == 0:
            return None
        query = select(Edit).where(Edit.face_id == face.id, Edit.seq == face.cursor)
        return session.exec(query).one()

    def undo(self, face_id: int) -> Edit | None:
        """Step back one edit; returns the new current edit (None: the original photo)."""
        return self._history_move(face_id, "undo")

    def redo(self, face_id: int) -> Edit:
        """Step forward to the edit that was undone last."""
        edit = self._history_move(face_id, "redo")
        assert edit is not None
        return edit

    def reset(self, face_id: int, plan_json: str) -> Edit:
        """Go back to the original photo as a new edit, so the reset itself can be undone."""
        edit = self._history_move(face_id, "reset", plan_json)
        assert edit is not None
        return edit

    def _history_move(self, face_id: int, move: str, plan_json: str = "") -> Edit | None:
        with self._transaction() as session:
            edit, dropped_files = self._move(session, face_id, move, plan_json, None)
        self._remove_files(dropped_files)
        return edit

    def history(self, face_id: int) -> list[Edit]:
        """All edits of a face by seq; the one with ``seq == face.cursor`` is current."""
        with self._transaction(write=False) as session:
            self._face(session, face_id)
            query = select(Edit).where(Edit.face_id == face_id).order_by(col(Edit.seq))
            return list(session.exec(query).all())

    # -- messages ------------------------------------------------------------------------

    def log_message(self, conversation_id: int, role: str, text: str) -> Message:
        with self._transaction() as session:
            if session.get(Conversation, conversation_id) is None:
                raise StorageError(f"No conversation with id {conversation_id}.")
            return self._log(session, conversation_id, role, text)

    @staticmethod
    def _log(session: Session, conversation_id: int, role: str, text: str) -> Message:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        message = Message(conversation_id=conversation_id, role=role, text=text)
        session.add(message)
        return message

    def messages(self, conversation_id: int, limit: int = 20) -> list[Message]:
        """The last ``limit`` messages of a conversation, oldest first."""
        with self._transaction(write=False) as session:
            # Ids, not timestamps, give the order: two messages can share a timestamp.
            query = (
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(col(Message.id).desc())
                .limit(limit)
            )
            return list(reversed(session.exec(query).all()))

    # -- files and forgetting --------------------------------------------------------------

    def user_files_dir(self, user_id: int) -> Path:
        """Where a user's rendered images go; created on demand."""
        path = self.files_dir / "users" / str(user_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def result_file(self, user_id: int, edit: Edit) -> Path:
        """Where ``edit``'s rendered image goes: named by the edit's id, which is never
        reused, so no two edits ever share a file."""
        return self.user_files_dir(user_id) / f"face-{edit.face_id}-edit-{edit.id}.png"

    def _remove_files(self, relative_paths: list[str]) -> None:
        for relative in relative_paths:
            try:
                (self.files_dir / relative).unlink(missing_ok=True)
            except OSError as exc:
                # The rows are already gone; a stray file must not turn success into failure.
                logger.warning("Could not delete result file %s: %s", relative, exc)

    def user_face_latents(self, platform: str, platform_user_id: str) -> list[bytes]:
        """The stored latents of every face of a user (what plugins learned from them is
        forgotten with the user)."""
        with self._transaction(write=False) as session:
            user = session.exec(user_query(platform, platform_user_id)).first()
            if user is None:
                return []
            conversation_ids = select(Conversation.id).where(Conversation.user_id == user.id)
            faces = select(Face.latents).where(col(Face.conversation_id).in_(conversation_ids))
            return list(session.exec(faces).all())

    def forget_user(self, platform: str, platform_user_id: str) -> dict[str, int]:
        """Delete every row and file of a user; returns deleted rows per table."""
        counts = {
            "messages": 0,
            "jobs": 0,
            "edits": 0,
            "faces": 0,
            "conversations": 0,
            "updates": 0,
            "users": 0,
        }
        with self._transaction() as session:
            user = session.exec(user_query(platform, platform_user_id)).first()
            if user is None:
                return counts
            user_id = user.id
            conversation_ids = select(Conversation.id).where(Conversation.user_id == user_id)
            face_ids = select(Face.id).where(col(Face.conversation_id).in_(conversation_ids))
            edits = select(Edit.result_path).where(col(Edit.face_id).in_(face_ids))
            result_files = [path for path in session.exec(edits).all() if path]
            photos = select(Face.photo_path).where(col(Face.conversation_id).in_(conversation_ids))
            result_files += [path for path in session.exec(photos).all() if path]
            incoming = select(Job.photo_path).where(col(Job.conversation_id).in_(conversation_ids))
            result_files += [path for path in session.exec(incoming).all() if path]
            # Children first, so foreign keys hold at every statement.
            deletes = {
                "messages": sa.delete(Message).where(
                    col(Message.conversation_id).in_(conversation_ids)
                ),
                "jobs": sa.delete(Job).where(col(Job.conversation_id).in_(conversation_ids)),
                "edits": sa.delete(Edit).where(col(Edit.face_id).in_(face_ids)),
                "faces": sa.delete(Face).where(col(Face.conversation_id).in_(conversation_ids)),
                "conversations": sa.delete(Conversation).where(Conversation.user_id == user_id),
                "updates": sa.delete(Update).where(Update.user_id == user_id),
                "users": sa.delete(User).where(User.id == user_id),
            }
            for table, statement in deletes.items():
                # No need to sync the session: nothing here is used after the delete.
                statement = statement.execution_options(synchronize_session=False)
                counts[table] = session.exec(statement).rowcount
        self._remove_files(result_files)
        user_dir = self.files_dir / "users" / str(user_id)
        logger.info("Forgot %s user %s: %s", platform, user_id, counts)
        try:
            shutil.rmtree(user_dir)
        except FileNotFoundError:
            pass
        except OSError as exc:
            # The rows are gone, but leftover images are still personal data: say so.
            raise StorageError(
                f"Your records were deleted, but the files in {user_dir} could not be "
                f"removed ({exc}). Delete that folder by hand."
            ) from exc
        return counts

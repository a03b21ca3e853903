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
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import defer
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from chatface.errors import StorageError
from chatface.storage.models import (
    UNFINISHED,
    Conversation,
    Edit,
    Face,
    Job,
    Message,
    Update,
    User,
    utc_now,
)
from chatface.storage.schema import migrate
from chatface.storage.sqlite import prepare_sqlite, sqlite_path

if TYPE_CHECKING:
    from chatface.config import Config

logger = logging.getLogger(__name__)

Row = TypeVar("Row", bound=SQLModel)
ROLES = ("user", "bot")
EMPTY_STATE = "{}"
MOVES = ("edit", "undo", "redo", "reset")


@dataclass(frozen=True)
class TurnView:
    """What a chat turn reads before it plans, in one read transaction.

    ``face`` is the conversation's active face; its blobs (``latents``, ``aligned_png``)
    are loaded only when its id is not among the ones the caller has cached, and
    reading them otherwise raises. ``current`` is its current edit (None: the original).
    """

    user_id: int | None
    conversation_id: int | None
    handled: bool  # the update was handled before: do nothing
    recent: list[tuple[str, str]]  # (role, text), oldest first
    face: Face | None
    current: Edit | None

    @property
    def state_json(self) -> str:
        return EMPTY_STATE if self.current is None else self.current.state_json


@dataclass(frozen=True)
class JobEnd:
    """What ending a job found."""

    found: bool  # False: the job was deleted meanwhile (/forget); nothing was written
    face: Face | None = None  # a photo job's new face, as stored
    current: bool = True  # a render's edit is still its face's current one


@dataclass(frozen=True)
class TurnWrite:
    """What a chat turn's write transaction did."""

    handled: bool  # the update was handled before: nothing was written
    user_id: int
    conversation_id: int
    current: Edit | None = None  # after the move (None: the original photo)
    job_id: int | None = None


def _check_relative(result_path: str) -> None:
    # Result paths are joined to the files dir and deleted on undo branches and /forget,
    # so one that escapes the files dir could make us delete someone else's file.
    path = PurePath(result_path)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"result_path must be relative to the files dir, got {result_path!r}")


def _user_query(platform: str, platform_user_id: str) -> SelectOfScalar[User]:
    return select(User).where(User.platform == platform, User.platform_user_id == platform_user_id)


def _get_or_create(session: Session, query: SelectOfScalar[Row], new: Row) -> Row:
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


class Store:
    """Users, conversations, faces, edit history with undo/redo, and the message log."""

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
            query = _user_query(platform, platform_user_id)
            new = User(platform=platform, platform_user_id=platform_user_id)
            return _get_or_create(session, query, new)

    def find_user(self, platform: str, platform_user_id: str) -> User | None:
        with self._transaction(write=False) as session:
            query = _user_query(platform, platform_user_id)
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
            return _get_or_create(session, query, Conversation(user_id=user_id, chat_id=chat_id))

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
            _check_relative(photo_path)
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
            _check_relative(result_path)
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
        _check_relative(result_path)
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
        with self._transaction() as session:
            face = self._face(session, face_id, lock=True)
            if face.cursor == 0:
                raise StorageError("Nothing to undo.")
            face.cursor -= 1
            session.add(face)
            session.flush()
            return self._current(session, face)

    def redo(self, face_id: int) -> Edit:
        """Step forward to the edit that was undone last."""
        with self._transaction() as session:
            face = self._face(session, face_id, lock=True)
            query = select(Edit).where(Edit.face_id == face_id, Edit.seq == face.cursor + 1)
            edit = session.exec(query).first()
            if edit is None:
                raise StorageError("Nothing to redo.")
            face.cursor = edit.seq
            session.add(face)
            return edit

    def reset(self, face_id: int, plan_json: str) -> Edit:
        """Go back to the original photo as a new edit, so the reset itself can be undone."""
        with self._transaction() as session:
            edit, dropped_files = self._append(session, face_id, plan_json, EMPTY_STATE, None)
        self._remove_files(dropped_files)
        return edit

    def history(self, face_id: int) -> list[Edit]:
        """All edits of a face by seq; the one with ``seq == face.cursor`` is current."""
        with self._transaction(write=False) as session:
            self._face(session, face_id)
            query = select(Edit).where(Edit.face_id == face_id).order_by(col(Edit.seq))
            return list(session.exec(query).all())

    # -- chat turns and jobs ------------------------------------------------------------

    def read_turn(
        self,
        platform: str,
        platform_user_id: str,
        chat_id: str,
        *,
        update_key: str | None = None,
        recent: int = 10,
        cached_faces: Collection[int] = (),
    ) -> TurnView:
        """Everything a turn needs before planning (see :class:`TurnView`); creates nothing."""
        with self._transaction(write=False) as session:
            user = session.exec(_user_query(platform, platform_user_id)).first()
            conversation = None
            if user is not None:
                query = select(Conversation).where(
                    Conversation.user_id == user.id, Conversation.chat_id == chat_id
                )
                conversation = session.exec(query).first()
            handled = update_key is not None and (
                session.exec(select(Update.id).where(Update.key == update_key)).first() is not None
            )
            if conversation is None:
                return TurnView(user and user.id, None, handled, [], None, None)
            messages = (
                select(Message.role, Message.text)
                .where(Message.conversation_id == conversation.id)
                .order_by(col(Message.id).desc())
                .limit(recent)
            )
            history = [(role, text) for role, text in reversed(session.exec(messages).all())]
            face = current = None
            if conversation.active_face_id is not None:
                query = select(Face).where(Face.id == conversation.active_face_id)
                if conversation.active_face_id in cached_faces:
                    query = query.options(defer(Face.latents), defer(Face.aligned_png))  # type: ignore[arg-type]
                face = session.exec(query).first()
                current = face and self._current(session, face)
            return TurnView(user and user.id, conversation.id, handled, history, face, current)

    def write_turn(
        self,
        platform: str,
        platform_user_id: str,
        chat_id: str,
        *,
        update_key: str | None = None,
        messages: Sequence[tuple[str, str]] = (),
        face_id: int | None = None,
        move: str | None = None,
        plan_json: str = "",
        new_state: Callable[[str], str] | None = None,
        reply: str = "",
        job: Job | None = None,
        job_if: Callable[[Edit | None], bool] | None = None,
    ) -> TurnWrite:
        """Record a turn in one write transaction: the user and conversation (created when
        new), the update's key, the chat lines ``messages`` ((role, text) pairs), a
        ``move`` of face ``face_id``'s history ("edit": append the state ``new_state``
        makes of the current one; "undo", "redo", "reset"), a ``job`` to do next (a
        render job renders the edit that is current after the move; with ``job_if``, only
        when it says so of that edit) and the bot's ``reply``: logged now, or when the
        job ends.

        A key seen before writes nothing and returns ``handled``. A move that cannot be
        made (nothing to undo, ...) raises ``StorageError`` and writes nothing.
        """
        if move is not None and move not in MOVES:
            raise ValueError(f"move must be one of {MOVES}, got {move!r}")
        dropped: list[str] = []
        with self._transaction() as session:
            query = _user_query(platform, platform_user_id)
            user = _get_or_create(
                session, query, User(platform=platform, platform_user_id=platform_user_id)
            )
            user_id = user.id or 0
            query = select(Conversation).where(
                Conversation.user_id == user_id, Conversation.chat_id == chat_id
            )
            conversation = _get_or_create(
                session, query, Conversation(user_id=user_id, chat_id=chat_id)
            )
            conversation_id = conversation.id or 0
            if update_key is not None:
                try:
                    with session.begin_nested():
                        session.add(Update(user_id=user_id, key=update_key))
                except IntegrityError:
                    return TurnWrite(True, user_id, conversation_id)
            for role, text in messages:
                self._log(session, conversation_id, role, text)
            current = None
            if move is not None:
                if face_id is None:
                    raise ValueError("a move needs the face_id")
                current, dropped = self._move(session, face_id, move, plan_json, new_state)
            job_id = None
            if job is not None and (job_if is None or job_if(current)):
                job.conversation_id = conversation_id
                if job.kind == "render":
                    job.face_id = face_id
                    job.edit_id = current and current.id
                job.reply = reply
                session.add(job)
                session.flush()
                job_id = job.id
            elif reply:
                self._log(session, conversation_id, "bot", reply)
        self._remove_files(dropped)
        return TurnWrite(False, user_id, conversation_id, current, job_id)

    def _move(
        self,
        session: Session,
        face_id: int,
        move: str,
        plan_json: str,
        new_state: Callable[[str], str] | None,
    ) -> tuple[Edit | None, list[str]]:
        face = self._face(session, face_id, lock=True)
        if move == "edit":
            if new_state is None:
                raise ValueError("an edit needs new_state")
            before = self._current(session, face)
            state = new_state(EMPTY_STATE if before is None else before.state_json)
            return self._append(session, face_id, plan_json, state, None)
        if move == "reset":
            return self._append(session, face_id, plan_json, EMPTY_STATE, None)
        if move == "undo":
            if face.cursor == 0:
                raise StorageError("Nothing to undo.")
            face.cursor -= 1
        else:
            query = select(Edit.seq).where(Edit.face_id == face_id, Edit.seq == face.cursor + 1)
            if session.exec(query).first() is None:
                raise StorageError("Nothing to redo.")
            face.cursor += 1
        session.add(face)
        session.flush()
        return self._current(session, face), []

    def mark_running(self, job_id: int) -> None:
        """A queued job has started (a no-op for one already finished)."""
        with self._transaction() as session:
            session.exec(
                sa.update(Job)
                .where(col(Job.id) == job_id, col(Job.state) == "queued")
                .values(state="running")
                .execution_options(synchronize_session=False)
            )

    def finish_job(
        self,
        job_id: int,
        state: str,
        *,
        reply: str = "",
        result_path: str | None = None,
        error: str | None = None,
        face: Face | None = None,
        undo: bool = False,
    ) -> JobEnd:
        """End a job in one write transaction: its state, a render's ``result_path``
        recorded on its edit, a photo job's new ``face`` added and made active, and the
        bot's ``reply`` logged (not for a render whose edit is no longer the current one:
        that reply is never sent). ``undo`` takes back a render's edit (that failed or was
        cancelled) if it is still the current one. A job deleted meanwhile (/forget) is
        left alone."""
        if result_path is not None:
            _check_relative(result_path)
        with self._transaction() as session:
            job = session.get(Job, job_id)
            if job is None or session.get(Conversation, job.conversation_id) is None:
                return JobEnd(found=False)
            job.state, job.error, job.finished_at = state, error, utc_now()
            session.add(job)
            current = True
            edit = None if job.edit_id is None else session.get(Edit, job.edit_id)
            if job.kind == "render":
                face_row = None if edit is None else session.get(Face, edit.face_id)
                current = face_row is not None and face_row.cursor == edit.seq  # type: ignore[union-attr]
                if edit is not None and result_path is not None:
                    edit.result_path = result_path
                    session.add(edit)
                if undo and current and face_row is not None:
                    face_row.cursor -= 1
                    session.add(face_row)
            if face is not None:
                face.conversation_id = job.conversation_id
                session.add(face)
                session.flush()
                conversation = session.get(Conversation, job.conversation_id)
                conversation.active_face_id = job.face_id = face.id  # type: ignore[union-attr]
                session.add(conversation)
            if reply and current:
                self._log(session, job.conversation_id, "bot", reply)
            return JobEnd(found=True, face=face, current=current)

    def unfinished_jobs(self, platform: str) -> list[tuple[Job, int, str, str]]:
        """Jobs of ``platform``'s users that were queued or running, oldest first, each
        with its user's id and platform id and its chat id."""
        with self._transaction(write=False) as session:
            query = (
                select(Job, User.id, User.platform_user_id, Conversation.chat_id)
                .join(Conversation, col(Job.conversation_id) == col(Conversation.id))
                .join(User, col(Conversation.user_id) == col(User.id))
                .where(User.platform == platform, col(Job.state).in_(UNFINISHED))
                .order_by(col(Job.id))
            )
            return [
                (job, uid or 0, user, chat) for job, uid, user, chat in session.exec(query).all()
            ]

    def prune(self, before: datetime) -> int:
        """Delete handled-update keys and finished jobs older than ``before``."""
        with self._transaction() as session:
            updates = sa.delete(Update).where(col(Update.created_at) < before)
            jobs = sa.delete(Job).where(
                col(Job.state).not_in(UNFINISHED), col(Job.created_at) < before
            )
            return sum(
                session.exec(q.execution_options(synchronize_session=False)).rowcount
                for q in (updates, jobs)
            )

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

    def _remove_files(self, relative_paths: list[str]) -> None:
        for relative in relative_paths:
            try:
                (self.files_dir / relative).unlink(missing_ok=True)
            except OSError as exc:
                # The rows are already gone; a stray file must not turn success into failure.
                logger.warning("Could not delete result file %s: %s", relative, exc)

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
            user = session.exec(_user_query(platform, platform_user_id)).first()
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

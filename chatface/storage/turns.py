"""The store's side of a chat turn and of the jobs a bot owes: one read transaction before
planning, one write transaction to record the turn, one to end each job."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from chatface.errors import StorageError
from chatface.files import atomic_write
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
from chatface.storage.rows import check_relative, get_or_create, user_query

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
    lost: bool = False  # another process claimed the job and answers it; nothing was written


@dataclass(frozen=True)
class Rendering:
    """How a render job renders an edit: its DDIM ``steps`` and condition ``schedule``.

    An earlier result of the same face and state rendered the same way serves the edit
    instead, unless its identity similarity is below ``min_identity`` (the identity
    guard would have lowered it).
    """

    steps: int
    schedule: str
    min_identity: float | None = None


@dataclass(frozen=True)
class TurnWrite:
    """What a chat turn's write transaction did."""

    handled: bool  # the update was handled before: nothing was written
    user_id: int
    conversation_id: int
    current: Edit | None = None  # after the move (None: the original photo)
    job_id: int | None = None


class Turns:
    """Turns and jobs; mixed into :class:`~chatface.storage.store.Store`."""

    if TYPE_CHECKING:  # what Store provides
        files_dir: Path

        def _transaction(self, *, write: bool = True) -> AbstractContextManager[Session]: ...
        @staticmethod
        def _face(session: Session, face_id: int, *, lock: bool = False) -> Face: ...
        @staticmethod
        def _current(session: Session, face: Face) -> Edit | None: ...
        def _append(
            self, session: Session, face_id: int, plan_json: str, state_json: str,
            result_path: str | None,
        ) -> tuple[Edit, list[str]]: ...  # fmt: skip
        @staticmethod
        def _log(session: Session, conversation_id: int, role: str, text: str) -> Message: ...
        def _remove_files(self, relative_paths: list[str]) -> None: ...
        def result_file(self, user_id: int, edit: Edit) -> Path: ...

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
            user = session.exec(user_query(platform, platform_user_id)).first()
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
        reuse: Callable[[Edit], Rendering] | None = None,
    ) -> TurnWrite:
        """Record a turn in one write transaction: the user and conversation (created when
        new), the update's key, the chat lines ``messages`` ((role, text) pairs), a
        ``move`` of face ``face_id``'s history ("edit": append the state ``new_state``
        makes of the current one; "undo", "redo", "reset"), a ``job`` to do next (a
        render job renders the edit that is current after the move; with ``job_if``, only
        when it says so of that edit; with ``reuse``, not when an earlier edit of the face
        has a stored result of the same state rendered as ``reuse`` says: the edit gets a
        copy of that file and its identity) and the bot's ``reply``: logged now, or when
        the job ends.

        A key seen before writes nothing and returns ``handled``. A move that cannot be
        made (nothing to undo, ...) raises ``StorageError`` and writes nothing.
        """
        if move is not None and move not in MOVES:
            raise ValueError(f"move must be one of {MOVES}, got {move!r}")
        dropped: list[str] = []
        with self._transaction() as session:
            query = user_query(platform, platform_user_id)
            user = get_or_create(
                session, query, User(platform=platform, platform_user_id=platform_user_id)
            )
            user_id = user.id or 0
            query = select(Conversation).where(
                Conversation.user_id == user_id, Conversation.chat_id == chat_id
            )
            conversation = get_or_create(
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
            wanted = job is not None and (job_if is None or job_if(current))
            if wanted and reuse is not None and current is not None:
                wanted = not self._copy_result(session, user_id, current, reuse(current))
            if job is not None and wanted:
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

    def _copy_result(
        self, session: Session, user_id: int, edit: Edit, rendering: Rendering
    ) -> bool:
        """Give ``edit`` a copy of the newest stored result of an earlier edit of its face
        with the same state, rendered as ``rendering`` says; False when there is none.
        A copy, not the same path: history truncation and /forget delete each edit's file."""
        query = (
            select(Edit)
            .where(
                Edit.face_id == edit.face_id,
                Edit.id != edit.id,
                Edit.state_json == edit.state_json,
                Edit.steps == rendering.steps,
                Edit.schedule == rendering.schedule,
                col(Edit.result_path).is_not(None),
            )
            .order_by(col(Edit.id).desc())
        )
        if rendering.min_identity is not None:
            query = query.where(
                sa.or_(col(Edit.identity).is_(None), col(Edit.identity) >= rendering.min_identity)
            )
        for earlier in session.exec(query).all():
            try:  # the file may be gone (deleted by hand, a crash mid-cleanup)
                data = (self.files_dir / (earlier.result_path or "")).read_bytes()
            except OSError:
                continue
            # Written before the row that points at it is committed.
            path = self.result_file(user_id, edit)
            atomic_write(path, data)
            edit.result_path = str(path.relative_to(self.files_dir))
            edit.identity = earlier.identity
            edit.steps, edit.schedule = rendering.steps, rendering.schedule
            session.add(edit)
            session.flush()
            return True
        return False

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
        identity: float | None = None,
        state_json: str | None = None,
        steps: int | None = None,
        schedule: str | None = None,
        owner: str | None = None,
    ) -> JobEnd:
        """End a job in one write transaction: its state, a render's ``result_path``,
        ``identity`` similarity, the ``state_json`` it rendered (when the identity guard
        lowered the edit) and the ``steps`` and ``schedule`` it rendered with recorded on
        its edit, a photo job's new ``face`` added and made active, and the
        bot's ``reply`` logged (not for a render whose edit is no longer the current one:
        that reply is never sent). ``undo`` takes back a render's edit (that failed or was
        cancelled) if it is still the current one. A job deleted meanwhile (/forget) is
        left alone, and so is one another process claimed from ``owner`` (when given)."""
        if result_path is not None:
            check_relative(result_path)
        with self._transaction() as session:
            # Row-locked: a claim cannot commit between the owner check and the write
            # (SQLite's writers lock the whole file up front anyway).
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or session.get(Conversation, job.conversation_id) is None:
                return JobEnd(found=False)
            if owner is not None and job.owner != owner:
                return JobEnd(found=True, current=False, lost=True)
            job.state, job.error, job.finished_at = state, error, utc_now()
            session.add(job)
            current = True
            edit = None if job.edit_id is None else session.get(Edit, job.edit_id)
            if job.kind == "render":
                face_row = None if edit is None else session.get(Face, edit.face_id)
                current = face_row is not None and face_row.cursor == edit.seq  # type: ignore[union-attr]
                if edit is not None and result_path is not None:
                    edit.result_path = result_path
                    edit.identity = identity
                    edit.state_json = state_json or edit.state_json
                    edit.steps, edit.schedule = steps, schedule
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

    def unfinished_jobs(
        self, platform: str, not_owner: str | None = None
    ) -> list[tuple[Job, int, str, str]]:
        """Jobs of ``platform``'s users that are queued or running (and not owned by
        ``not_owner``), oldest first, each with its user's id and platform id and its
        chat id."""
        with self._transaction(write=False) as session:
            query = (
                select(Job, User.id, User.platform_user_id, Conversation.chat_id)
                .join(Conversation, col(Job.conversation_id) == col(Conversation.id))
                .join(User, col(Conversation.user_id) == col(User.id))
                .where(User.platform == platform, col(Job.state).in_(UNFINISHED))
                .order_by(col(Job.id))
            )
            if not_owner is not None:
                query = query.where(sa.or_(col(Job.owner).is_(None), col(Job.owner) != not_owner))
            return [
                (job, uid or 0, user, chat) for job, uid, user, chat in session.exec(query).all()
            ]

    def claim_job(self, job: Job, owner: str) -> bool:
        """Make ``owner`` the owner of unfinished ``job`` if no one claimed it since it was
        read (one conditional update, so of processes claiming at once one wins)."""
        with self._transaction() as session:
            claimed = session.exec(
                sa.update(Job)
                .where(
                    col(Job.id) == job.id,
                    col(Job.state).in_(UNFINISHED),
                    col(Job.owner).is_not_distinct_from(job.owner),
                )
                .values(owner=owner)
                .execution_options(synchronize_session=False)
            )
            return claimed.rowcount == 1

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

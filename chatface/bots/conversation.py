"""The platform-neutral dialogue: photos, messages and commands in, replies out.

Every front end (the terminal ``chatface chat``, the Telegram and Discord bots) is a thin
adapter over :class:`ConversationCore`, which is async and never blocks the event loop:
storage runs in worker threads, a new face is encoded on the render queue's model
thread, renders go through the queue as data-only requests (so many users' edits share
model calls), and paste-back and image encoding run in the queue's small pool.

A turn reads what it needs in one read transaction (the face's large blobs only when
the face is not in the LRU cache), plans, and records the messages, the history move
and the job it starts in one write transaction; a job's end (its result, the reply) is
one more. Jobs are durable: a photo to encode or an edit to render is a row written
before the work starts, so after a crash :meth:`ConversationCore.recover` finishes or
answers each one. Updates are idempotent: a platform update id seen before does nothing.

The jobs themselves are carried out in :mod:`chatface.bots.jobs`, decoded faces are kept
in :mod:`chatface.bots.faces`, and the replies, commands and texts are in
:mod:`chatface.bots.replies`.

A photo is encoded once and stored with its latents; each message is rendered from the
stored original latents with the whole accumulated state, so undo and redo are exact and
many turns never drift. User errors become replies, never exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from chatface.bots.faces import FaceCache
from chatface.bots.identity import identity_label, identity_reply
from chatface.bots.jobs import Deliver, Jobs, new_incoming
from chatface.bots.replies import (
    COMMANDS,
    EMPTY_TEXT,
    FORGET_ASK,
    HELP,
    NO_FACE,
    SILENT,
    TOO_FAST,
    WELCOME,
    Command,
    Delivery,
    RateLimit,
    Reply,
)
from chatface.bots.zero_shot import ZeroShotTurns, forget_learned
from chatface.engine.types import EditPlan, Progress, SessionState
from chatface.errors import ChatFaceError, StorageError
from chatface.files import atomic_write

if TYPE_CHECKING:
    from chatface.engine.editor import Engine, OpenedFace
    from chatface.engine.queue import RenderQueue
    from chatface.storage import Edit, Store
    from chatface.storage.turns import TurnView, TurnWrite

logger = logging.getLogger(__name__)
# What front ends import from here.
__all__ = ["COMMANDS", "NO_FACE", "TOO_FAST", "Command", "ConversationCore", "Delivery", "Reply"]

MAX_TEXT = 1000  # characters; a face edit never needs more
RECENT_TURNS = 10
HISTORY_LINES = 20
_COMMAND_PLANS = {
    "help": EditPlan("help"),
    "attributes": EditPlan("list_attributes"),
    "undo": EditPlan("undo"),
    "redo": EditPlan("redo"),
    "reset": EditPlan("reset"),
    "original": EditPlan("show_original"),
}


def _photo_label(name: str) -> str:
    return f"[photo {name}]".replace(" ]", "]")


class ConversationCore:
    """One engine, store and render queue shared by every user of a front end."""

    def __init__(
        self,
        engine: Engine,
        store: Store,
        queue: RenderQueue,
        platform: str,
        backend: str | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.queue = queue
        self.platform = platform
        self.backend = backend or engine.config["engine.backend"]  # for new photos
        self.faces = FaceCache(store, queue, int(engine.config["bots.face_cache"]))
        self.jobs = Jobs(engine, store, queue, self.faces, platform, self.backend)
        self.zero_shot = ZeroShotTurns(engine, queue, self.faces)
        self._rate = RateLimit(int(engine.config["bots.rate_limit_per_minute"]))
        # (user, chat) -> its turn lock; entries go when no turn holds or awaits them
        self._turns: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @contextlib.asynccontextmanager
    async def _in_order(self, user: str, chat: str) -> AsyncIterator[None]:
        """One turn of a chat at a time, in arrival order, up to its render: a message sent
        right after a photo is planned on that photo's face."""
        key = (user, chat)
        lock = self._turns.get(key)
        if lock is None:
            lock = self._turns[key] = asyncio.Lock()
        async with lock:
            yield

    def _update_key(self, update_id: str | None) -> str | None:
        return None if update_id is None else f"{self.platform}/{update_id}"[:255]

    # --- the front ends' API ------------------------------------------------------------

    async def receive_photo(
        self,
        user: str,
        chat: str,
        photo: bytes | Callable[[], Awaitable[bytes]],
        name: str = "",
        progress: Progress | None = None,
        update_id: str | None = None,
    ) -> Reply:
        """Find and encode the face; it becomes the chat's active face.

        ``photo`` may be a coroutine function that downloads it: it is called in the
        chat's turn, so a text sent right after the photo waits for its face, and only
        once the flood limit let the message through; a ``ChatFaceError`` it raises is the
        reply.
        """
        if (limited := self._rate.check(user)) is not None:
            return limited
        async with self._in_order(user, chat):
            if not isinstance(photo, bytes):
                try:
                    photo = await photo()
                except ChatFaceError as exc:  # a failed download, a file too large, ...
                    return Reply(str(exc), error=True)
            # The photo is on disk before the job row that points at it.
            path = new_incoming(self.store)
            await asyncio.to_thread(atomic_write, path, photo)
            job = self.jobs.new("photo", photo_path=str(path.relative_to(self.store.files_dir)))
            write = await self._write(
                user,
                chat,
                update_id,
                messages=[("user", _photo_label(name))],
                job=job,
            )
            if write.handled:
                path.unlink(missing_ok=True)
                return SILENT
            return await self.jobs.encode(
                write.job_id or 0, write.user_id, photo, name, progress, path
            )

    async def add_face(
        self, user: str, chat: str, opened: OpenedFace, photo: bytes, name: str = ""
    ) -> Reply:
        """Store a face opened by ``Engine.open_face`` as the chat's active face (the CLI
        opens its first photo before the chat starts)."""
        write = await self._write(
            user,
            chat,
            None,
            messages=[("user", _photo_label(name))],
            job=self.jobs.new("photo"),
        )
        return await self.jobs.store_face(write.job_id or 0, write.user_id, opened, photo, name)

    async def receive_text(
        self,
        user: str,
        chat: str,
        text: str,
        progress: Progress | None = None,
        update_id: str | None = None,
    ) -> Reply:
        """Plan the message and carry it out."""
        if (limited := self._rate.check(user)) is not None:
            return limited
        text = text.strip()
        if not text:
            return Reply(EMPTY_TEXT, error=True)
        if len(text) > MAX_TEXT:
            return Reply(
                f"That message is too long ({len(text):,} characters); say in a sentence or "
                "two what to change.",
                error=True,
            )
        async with self._in_order(user, chat):
            view = await self._read(user, chat, update_id)
            if view.handled:
                return SILENT
            state = SessionState.from_json(view.state_json)
            try:
                seconds = await self.zero_shot.seconds(view.face)
                # Async planners await their API; the others run in a worker thread.
                plan = await self.engine.aplan(text, state, view.recent, learn_seconds=seconds)
                plan = await self.zero_shot.check(plan, view.face, seconds)
                if plan.learn is not None and plan.learn.confirmed:
                    plan = await self.zero_shot.learn(plan.learn, view.face, progress)
            except ChatFaceError as exc:
                plan = EditPlan("chat", reply=str(exc))
            outcome = await self._turn(user, chat, view, plan, text, update_id, progress)
        return await _settle(outcome)

    async def command(
        self,
        user: str,
        chat: str,
        name: str,
        arg: str = "",
        progress: Progress | None = None,
        update_id: str | None = None,
    ) -> Reply:
        """Run a command of :data:`COMMANDS` (a button press is one too)."""
        if (limited := self._rate.check(user)) is not None:
            return limited
        if name == "forget":
            return await self._forget(user, arg)
        if name == "status":
            return self.jobs.status(user, chat)
        if name == "cancel":
            return self.jobs.cancel(user, chat)
        plan = _COMMAND_PLANS.get(name)
        if plan is None and name not in ("start", "history", "identity"):
            known = ", ".join(f"/{c.name}" for c in COMMANDS)
            return Reply(f"I don't know /{name}. Commands: {known}.", error=True)
        said = f"/{name} {arg}".strip()
        async with self._in_order(user, chat):
            view = await self._read(user, chat, update_id)
            if view.handled:
                return SILENT
            if plan is None:
                if name == "identity":
                    reply = identity_reply(view)
                else:
                    reply = Reply(WELCOME) if name == "start" else await self._history(view)
                return await self._say(user, chat, view, said, reply, update_id)
            outcome = await self._turn(user, chat, view, plan, said, update_id, progress)
        return await _settle(outcome)

    async def carry_out(
        self, user: str, chat: str, plan: EditPlan, progress: Progress | None = None
    ) -> Reply:
        """Carry out a plan made elsewhere on the chat's active face, and reply."""
        async with self._in_order(user, chat):
            view = await self._read(user, chat, None)
            outcome = await self._turn(user, chat, view, plan, "", None, progress)
        return await _settle(outcome)

    async def current(self, user: str, chat: str) -> Reply:
        """The chat's current image at full size (the latest result, or the original),
        without a render; a text reply when there is none yet."""
        view = await self._read(user, chat, None)
        if view.face is None:
            return Reply(NO_FACE)
        stored = await asyncio.to_thread(self.faces.stored_result, view.current)
        if stored is not None:
            return Reply("Full size.", stored, "image/png")
        if SessionState.from_json(view.state_json).strengths:
            return Reply("The result is still being made; ask again when it arrives.")
        photo = (await self.faces.opened(view.face)).opened.photo
        return await self.faces.image_reply("The original, full size.", photo, None)

    async def recover(self, deliver: Deliver) -> int:
        """Finish the jobs that were queued or running when this platform's bot stopped
        (a crash, kill -9, a restart), each reply sent with ``deliver`` as soon as its job
        is done; returns how many there were. Call it once, at start-up."""
        return await self.jobs.recover(deliver)

    def close(self) -> None:
        """End this process's run, after its render queue closed: the jobs it left
        unfinished are the next start's to recover (a process that ends without closing
        is seen to have ended all the same)."""
        self.jobs.run.close()

    # --- turns --------------------------------------------------------------------------

    async def _read(self, user: str, chat: str, update_id: str | None) -> TurnView:
        return await asyncio.to_thread(
            self.store.read_turn,
            self.platform,
            user,
            chat,
            update_key=self._update_key(update_id),
            recent=RECENT_TURNS,
            cached_faces=self.faces.ids(),
        )

    async def _write(self, user: str, chat: str, update_id: str | None, **fields: Any) -> TurnWrite:
        """``Store.write_turn`` for this platform, in a worker thread."""
        write = functools.partial(
            self.store.write_turn, self.platform, user, chat, update_key=self._update_key(update_id)
        )
        return await asyncio.to_thread(write, **fields)

    async def _say(
        self, user: str, chat: str, view: TurnView, said: str, reply: Reply, update_id: str | None
    ) -> Reply:
        """Record a turn that renders nothing: the user's words and the reply."""
        write = await self._write(
            user,
            chat,
            update_id,
            messages=[m for m in (("user", said), ("bot", reply.text)) if m[1]],
        )
        return SILENT if write.handled else reply

    async def _turn(
        self,
        user: str,
        chat: str,
        view: TurnView,
        plan: EditPlan,
        said: str,
        update_id: str | None,
        progress: Progress | None,
    ) -> Reply | Callable[[], Awaitable[Reply]]:
        """Record the turn; its reply, or the render that makes it (run after the turn's
        lock is released, so that a newer message can replace it while it waits)."""
        if plan.action in ("help", "chat"):
            return await self._say(
                user, chat, view, said, Reply(plan.reply or HELP, plan=plan), update_id
            )
        if plan.action == "list_attributes":
            names = ", ".join(sorted(a.name for a in self.engine.attributes()))
            reply = Reply(f"I can change: {names}.", plan=plan)
            return await self._say(user, chat, view, said, reply, update_id)
        face = view.face
        if face is None:
            return await self._say(user, chat, view, said, Reply(NO_FACE, plan=plan), update_id)
        if plan.action == "show_original":
            photo = (await self.faces.opened(face)).opened.photo
            reply = await self.faces.image_reply(plan.reply or "The original photo.", photo, plan)
            return await self._say(user, chat, view, said, reply, update_id)
        text = plan.reply or {
            "undo": "Undone.",
            "redo": "Redone.",
            "reset": "Back to the original.",
        }.get(plan.action, "Done.")
        attributes = {a.name: a for a in self.engine.attributes()}

        def new_state(before: str) -> str:
            return SessionState.from_json(before).apply(plan.edits, attributes).to_json()

        def needs_render(current: Edit | None) -> bool:
            """Not the original, not all-zero strengths, no stored result on disk."""
            if current is None or self.faces.stored_result(current, read=False) is not None:
                return False
            return bool(SessionState.from_json(current.state_json).strengths)

        try:
            write = await self._write(
                user,
                chat,
                update_id,
                messages=[("user", said)] if said else [],
                face_id=face.id,
                move=plan.action,
                plan_json=plan.to_json(),
                new_state=new_state,
                reply=text,
                job=self.jobs.new("render", steps=plan.steps, schedule=plan.schedule),
                job_if=needs_render,
                reuse=lambda current: self.jobs.rendering(plan, current.state_json),
            )
        except ChatFaceError as exc:  # nothing to undo, an unknown attribute, ...
            reply = Reply(str(exc), plan=plan, error=True)
            return await self._say(user, chat, view, said, reply, update_id)
        if write.handled:
            return SILENT
        current = write.current
        if write.job_id is not None and current is not None:  # rendered after the turn
            return functools.partial(
                self.jobs.render,
                write.job_id,
                user,
                chat,
                write.user_id,
                face,
                current,
                plan,
                text,
                progress,
            )
        stored = await asyncio.to_thread(self.faces.stored_result, current)
        # Undo/redo: the very image shown before; or a copy of an earlier edit's result
        # of the same state (write_turn's reuse): no render either way.
        if stored is not None:
            reply = Reply(text, stored, "image/png", plan)
        else:  # the original (all strengths zero)
            photo = (await self.faces.opened(face)).opened.photo
            reply = await self.faces.image_reply(text, photo, plan)
        return reply

    # --- /forget and /history ---------------------------------------------------------

    async def _forget(self, user: str, arg: str) -> Reply:
        answer = arg.strip().lower()
        if answer in ("no", "n", "cancel"):
            return Reply("Nothing was deleted.")
        if answer not in ("yes", "y"):
            return Reply(FORGET_ASK, confirm="forget")
        self.jobs.drop(user)
        try:
            await asyncio.to_thread(forget_learned, self.engine, self.store, self.platform, user)
            counts = await asyncio.to_thread(self.store.forget_user, self.platform, user)
        except StorageError as exc:  # e.g. files that could not be removed: for the operator
            logger.error("Forgetting a %s user failed: %s", self.platform, exc)
            return Reply(
                "Something went wrong while deleting your data; it is not all gone yet. "
                "Please try /forget again later.",
                error=True,
            )
        finally:
            self.faces.clear()  # cheap to refill; no face of this user may stay in memory
        faces, edits = counts.get("faces", 0), counts.get("edits", 0)
        return Reply(
            f"Done: I deleted everything I had stored about you ({faces} face(s), "
            f"{edits} edit(s), {counts.get('messages', 0)} message(s))."
        )

    async def _history(self, view: TurnView) -> Reply:
        if view.face is None:
            return Reply(NO_FACE)
        edits = await asyncio.to_thread(self.store.history, view.face.id or 0)
        cursor = view.face.cursor
        lines = [f"0. the original photo{'  <- now' if cursor == 0 else ''}"]
        for edit in edits[-HISTORY_LINES:]:
            now = "  <- now" if edit.seq == cursor else ""
            lines.append(f"{edit.seq}. {_describe(edit.plan_json)}{identity_label(edit)}{now}")
        return Reply("\n".join(lines))


async def _settle(outcome: Reply | Callable[[], Awaitable[Reply]]) -> Reply:
    return outcome if isinstance(outcome, Reply) else await outcome()


def _describe(plan_json: str) -> str:
    """One history line for a stored plan."""
    try:
        plan = EditPlan.from_dict(json.loads(plan_json))
    except (ChatFaceError, ValueError):
        return "an edit"
    if plan.action == "reset":
        return "reset to the original"
    parts = [f"{op.attribute} {op.strength:+.2f}" for op in plan.edits]
    return ", ".join(parts) or plan.action

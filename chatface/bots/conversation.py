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

A photo is encoded once and stored with its latents; each message is rendered from the
stored original latents with the whole accumulated state, so undo and redo are exact and
many turns never drift. User errors become replies, never exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import json
import logging
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from chatface.engine.batch import RenderRequest
from chatface.engine.queue import JobCancelledError, JobReplacedError
from chatface.engine.types import EditPlan, Latents, Progress, SessionState
from chatface.errors import ChatFaceError, StorageError
from chatface.files import atomic_write
from chatface.storage.models import Face, Job, utc_now

if TYPE_CHECKING:
    from PIL import Image

    from chatface.engine.editor import Engine, OpenedFace
    from chatface.engine.queue import RenderJob, RenderQueue
    from chatface.storage import Edit, Store
    from chatface.storage.store import TurnView

logger = logging.getLogger(__name__)

HELP = (
    "Send a photo with a face, then tell me what to change: 'make her smile', 'add glasses "
    "and make him older', 'a bit more', 'less'. Commands: /undo, /redo, /reset, /original, "
    "/attributes, /history, /status, /cancel, /forget, /help."
)
WELCOME = "Hi! I edit the face in your photo by chat. " + HELP
NO_FACE = "Send me a photo with a face first."
EMPTY_TEXT = "Say what to change, e.g. 'make her smile' or 'add glasses'."
MAX_TEXT = 1000  # characters; a face edit never needs more
TOO_FAST = "You are sending messages faster than I can keep up with; please wait a few seconds."
FORGET_ASK = (
    "This deletes every photo, edit and message I have stored for you, for good. Are you sure?"
)
FAILED = "Sorry, something went wrong with this one; please try again."
RECENT_TURNS = 10
HISTORY_LINES = 20
PROGRESS_INTERVAL_S = 0.25  # a new face's encoding steps are reported at most this often
KEEP_HANDLED = timedelta(days=7)  # update ids and finished jobs are kept this long


@dataclass(frozen=True)
class Command:
    """A bot command, with its menu descriptions in English and Chinese."""

    name: str
    description: str
    description_zh: str


COMMANDS = (
    Command("start", "How this bot works", "使用说明"),
    Command("help", "What you can say", "可以说什么"),
    Command("attributes", "What I can change", "可以修改的属性"),
    Command("undo", "Undo the last edit", "撤销上一步"),
    Command("redo", "Redo what you undid", "重做"),
    Command("reset", "Back to the original, as a new step", "恢复原图"),
    Command("original", "Show the original photo", "查看原图"),
    Command("history", "The edits so far", "编辑历史"),
    Command("status", "Where your edit is in the queue", "排队状态"),
    Command("cancel", "Cancel your waiting edit", "取消等待中的编辑"),
    Command("forget", "Delete everything stored about you", "删除你的全部数据"),
)
_COMMAND_PLANS = {
    "help": EditPlan("help"),
    "attributes": EditPlan("list_attributes"),
    "undo": EditPlan("undo"),
    "redo": EditPlan("redo"),
    "reset": EditPlan("reset"),
    "original": EditPlan("show_original"),
}
_MOVES = {"edit": "edit", "undo": "undo", "redo": "redo", "reset": "reset"}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _photo_label(name: str) -> str:
    return f"[photo {name}]".replace(" ]", "]")


@dataclass(frozen=True)
class Reply:
    """What to send back: a short text, and an image (encoded once) when there is one.

    A reply with no text and no image means: send nothing (a redelivered update, a render
    replaced by the same user's newer message, a repeated flood warning). ``error``: the
    text says why the request could not be done. ``confirm``: the command to confirm
    with Yes/No buttons, which send ``command(name, "yes")`` or ``"no"``.
    """

    text: str
    image: bytes | None = None
    image_type: str | None = None  # "image/png", ...
    plan: EditPlan | None = None
    error: bool = False
    confirm: str | None = None

    @property
    def empty(self) -> bool:
        return not self.text and self.image is None


SILENT = Reply("")


@dataclass(frozen=True)
class Delivery:
    """A reply owed to a chat after a restart (see :meth:`ConversationCore.recover`)."""

    user: str
    chat: str
    reply: Reply


class _RateLimit:
    """At most ``per_minute`` messages per user in any 60 s; one warning per burst."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._warned: dict[str, float] = {}

    def check(self, user: str) -> Reply | None:
        """None when the message may go on, else the reply (a warning, or silence)."""
        if self.per_minute <= 0:
            return None
        now = time.monotonic()
        seen = self._seen.setdefault(user, deque())
        while seen and now - seen[0] >= 60:
            seen.popleft()
        if len(seen) < self.per_minute:
            seen.append(now)
            return None
        if now - self._warned.get(user, float("-inf")) < 60:
            return SILENT
        self._warned[user] = now
        return Reply(TOO_FAST, error=True)


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
        # face id -> (decoded face, its latents blob), least recently used first
        self._faces: OrderedDict[int, tuple[OpenedFace, bytes]] = OrderedDict()
        self._cache_size = max(1, int(engine.config["bots.face_cache"]))
        self._rate = _RateLimit(int(engine.config["bots.rate_limit_per_minute"]))
        self._active: dict[str, tuple[RenderJob, int | None]] = {}  # user -> newest render
        self._cancelled: set[int] = set()  # job rows cancelled with /cancel
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

    def _queue_user(self, user: str) -> str:
        return f"{self.platform}:{user}"

    def _update_key(self, update_id: str | None) -> str | None:
        return None if update_id is None else f"{self.platform}/{update_id}"[:255]

    # --- the front ends' API ------------------------------------------------------------

    async def receive_photo(
        self,
        user: str,
        chat: str,
        photo: bytes,
        name: str = "",
        progress: Progress | None = None,
        update_id: str | None = None,
    ) -> Reply:
        """Find and encode the face; it becomes the chat's active face."""
        if (limited := self._rate.check(user)) is not None:
            return limited
        async with self._in_order(user, chat):  # a text sent right after waits for the face
            # The photo is on disk before the job row that points at it.
            incoming = Path("incoming") / f"{_digest(photo)}.bin"
            await asyncio.to_thread(atomic_write, self.store.files_dir / incoming, photo)
            job = Job(kind="photo", photo_path=str(incoming))
            write = await asyncio.to_thread(
                self.store.write_turn,
                self.platform,
                user,
                chat,
                update_key=self._update_key(update_id),
                messages=[("user", _photo_label(name))],
                job=job,
            )
            if write.handled:
                return SILENT
            return await self._encode(write.job_id or 0, write.user_id, photo, name, progress)

    async def add_face(
        self, user: str, chat: str, opened: OpenedFace, photo: bytes, name: str = ""
    ) -> Reply:
        """Store a face opened by ``Engine.open_face`` as the chat's active face (the CLI
        opens its first photo before the chat starts)."""
        job = Job(kind="photo")
        write = await asyncio.to_thread(
            self.store.write_turn,
            self.platform,
            user,
            chat,
            messages=[("user", "[photo]")],
            job=job,
        )
        return await self._store_face(write.job_id or 0, write.user_id, opened, photo, name)

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
                # Async planners await their API; the others run in a worker thread.
                plan = await self.engine.aplan(text, state, view.recent)
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
            return self._status(user)
        if name == "cancel":
            return await self._cancel(user)
        plan = _COMMAND_PLANS.get(name)
        if plan is None and name not in ("start", "history"):
            known = ", ".join(f"/{c.name}" for c in COMMANDS)
            return Reply(f"I don't know /{name}. Commands: {known}.", error=True)
        said = f"/{name} {arg}".strip()
        async with self._in_order(user, chat):
            view = await self._read(user, chat, update_id)
            if view.handled:
                return SILENT
            if plan is None:
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
        stored = await asyncio.to_thread(self._stored_result, view.current)
        if stored is not None:
            return Reply("Full size.", stored, "image/png")
        if SessionState.from_json(view.state_json).strengths:
            return Reply("The result is still being made; ask again when it arrives.")
        opened, _ = await self._opened(view.face)
        return await self._image_reply("The original, full size.", opened.photo, None)

    async def recover(self) -> list[Delivery]:
        """Finish the jobs that were queued or running when this platform's bot stopped
        (a crash, kill -9, a restart); returns the replies to send to their chats."""
        await asyncio.to_thread(self.store.prune, utc_now() - KEEP_HANDLED)
        rows = await asyncio.to_thread(self.store.unfinished_jobs, self.platform)
        if rows:
            logger.info("Recovering %d unfinished job(s)", len(rows))

        async def one(job: Job, user_id: int, user: str, chat: str) -> Delivery:
            try:
                reply = await self._resume(job, user, user_id)
            except Exception:
                logger.exception("Could not recover job %s", job.id)
                reply = Reply(FAILED, error=True)
                await asyncio.to_thread(
                    self.store.finish_job, job.id or 0, "failed", reply=FAILED, error="recovery"
                )
            return Delivery(user, chat, reply)

        deliveries = await asyncio.gather(*(one(*row) for row in rows))
        return [d for d in deliveries if not d.reply.empty]

    # --- turns --------------------------------------------------------------------------

    async def _read(self, user: str, chat: str, update_id: str | None) -> TurnView:
        return await asyncio.to_thread(
            self.store.read_turn,
            self.platform,
            user,
            chat,
            update_key=self._update_key(update_id),
            recent=RECENT_TURNS,
            cached_faces=frozenset(self._faces),
        )

    async def _say(
        self, user: str, chat: str, view: TurnView, said: str, reply: Reply, update_id: str | None
    ) -> Reply:
        """Record a turn that renders nothing: the user's words and the reply."""
        write = await asyncio.to_thread(
            self.store.write_turn,
            self.platform,
            user,
            chat,
            update_key=self._update_key(update_id),
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
            opened, _ = await self._opened(face)
            reply = await self._image_reply(plan.reply or "The original photo.", opened.photo, plan)
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
            if current is None or self._stored_result(current, read=False) is not None:
                return False
            return bool(SessionState.from_json(current.state_json).strengths)

        try:
            write = await asyncio.to_thread(
                self.store.write_turn,
                self.platform,
                user,
                chat,
                update_key=self._update_key(update_id),
                messages=[("user", said)] if said else [],
                face_id=face.id,
                move=_MOVES[plan.action],
                plan_json=plan.to_json(),
                new_state=new_state,
                reply=text,
                job=Job(kind="render", steps=plan.steps),
                job_if=needs_render,
            )
        except ChatFaceError as exc:  # nothing to undo, an unknown attribute, ...
            reply = Reply(str(exc), plan=plan, error=True)
            return await self._say(user, chat, view, said, reply, update_id)
        if write.handled:
            return SILENT
        current = write.current
        if write.job_id is not None and current is not None:  # rendered after the turn
            return functools.partial(
                self._render, write.job_id, user, write.user_id, face, current, plan, text, progress
            )
        stored = await asyncio.to_thread(self._stored_result, current)
        if stored is not None:  # undo/redo: the very image shown before, at no cost
            reply = Reply(text, stored, "image/png", plan)
        else:  # the original (all strengths zero)
            opened, _ = await self._opened(face)
            reply = await self._image_reply(text, opened.photo, plan)
        return reply

    # --- jobs ---------------------------------------------------------------------------

    async def _encode(
        self, job_id: int, user_id: int, photo: bytes, name: str, progress: Progress | None
    ) -> Reply:
        """A photo job: find and encode the face, store it."""
        try:
            opened = await self.queue.run_model(
                self.engine.open_face, photo, backend=self.backend, progress=_on_loop(progress)
            )
        except JobCancelledError:
            return SILENT  # the queue closed: the job is done after the restart
        except ChatFaceError as exc:
            self._drop_incoming(photo)
            return await self._fail(job_id, str(exc))
        except Exception:
            logger.exception("Encoding a photo failed (job %s)", job_id)
            self._drop_incoming(photo)
            return await self._fail(job_id, FAILED, "unexpected error")
        return await self._store_face(job_id, user_id, opened, photo, name)

    async def _store_face(
        self, job_id: int, user_id: int, opened: OpenedFace, photo: bytes, name: str
    ) -> Reply:
        from chatface.engine.photos import encode_image

        def encode_both() -> tuple[bytes, bytes]:
            return encode_image(opened.photo)[0], encode_image(opened.aligned.image)[0]

        photo_png, crop_png = await self.queue.postprocess(encode_both)
        latents = opened.latents.to_bytes()
        text = "Got the face. What should I change?"
        if opened.note:
            text = f"{opened.note} {text}"
        face = Face(
            conversation_id=0,  # the job's
            aligned_png=crop_png,
            inverse_transform=json.dumps(opened.aligned.to_photo.reshape(-1).tolist()),
            latents=latents,
            backend=opened.backend,
            weights_sha256=self.engine.backend(opened.backend).weights_sha256,
            source_name=name,
        )

        def store_face() -> Face | None:
            # Named by content, so the file exists before the face row that points at it.
            photo_file = self.store.user_files_dir(user_id) / f"photo-{_digest(photo)}.png"
            if not photo_file.exists():
                atomic_write(photo_file, photo_png)
            face.photo_path = str(photo_file.relative_to(self.store.files_dir))
            stored = self.store.finish_job(job_id, "done", reply=text, face=face)
            self._drop_incoming(photo)
            return stored

        stored = await asyncio.to_thread(store_face)
        if stored is None:  # forgotten meanwhile
            return SILENT
        self._remember(stored.id or 0, opened, latents)
        return Reply(text)

    def _drop_incoming(self, photo: bytes) -> None:
        (self.store.files_dir / "incoming" / f"{_digest(photo)}.bin").unlink(missing_ok=True)

    async def _render(
        self,
        job_id: int,
        user: str,
        user_id: int,
        face: Face,
        current: Edit,
        plan: EditPlan,
        text: str,
        progress: Progress | None,
    ) -> Reply:
        """A render job: render the current edit's state, paste it back, store it."""
        key = self._queue_user(user)
        try:
            opened, latents = await self._opened(face)
            request = RenderRequest.make(
                uuid.uuid4().hex,
                latents,
                SessionState.from_json(current.state_json),
                steps=plan.steps or self.engine.config["render.steps"],
                schedule=self.engine.config["render.schedule"],
                backend=face.backend,
                user=key,
            )
            job = await self.queue.submit(request, self._started(job_id, progress))
        except ChatFaceError as exc:  # the queue is full, the face is gone, ...
            return await self._fail(job_id, str(exc), undo=True)
        self._active[key] = (job, job_id)
        try:
            result = await job.result()
        except JobReplacedError:
            await asyncio.to_thread(self.store.finish_job, job_id, "cancelled")
            return SILENT  # the newer message answers
        except JobCancelledError:
            if job_id not in self._cancelled:
                return SILENT  # the queue closed: the job is done after the restart
            self._cancelled.discard(job_id)
            await asyncio.to_thread(self.store.finish_job, job_id, "cancelled", undo=True)
            return SILENT  # /cancel answers
        except ChatFaceError as exc:
            return await self._fail(job_id, str(exc), undo=True)
        except Exception:
            logger.exception("Rendering failed (job %s)", job_id)
            return await self._fail(job_id, FAILED, "unexpected error", undo=True)
        finally:
            if self._active.get(key, (None,))[0] is job:
                del self._active[key]
        path = self.store.user_files_dir(user_id) / f"face-{face.id}-edit-{current.seq}.png"
        image = await self.queue.postprocess(_finish, opened, result.crop, path)
        relative = str(path.relative_to(self.store.files_dir))
        await asyncio.to_thread(
            self.store.finish_job, job_id, "done", reply=text, result_path=relative
        )
        return Reply(text, image, "image/png", plan)

    def _started(self, job_id: int, progress: Progress | None) -> Progress:
        """The job's progress callback; the first report marks the job row running."""
        started = False

        def report(done: int, total: int) -> None:
            nonlocal started
            if not started:
                started = True
                asyncio.get_running_loop().run_in_executor(None, self.store.mark_running, job_id)
            if progress is not None:
                progress(done, total)

        return report

    async def _fail(
        self, job_id: int, message: str, error: str | None = None, *, undo: bool = False
    ) -> Reply:
        await asyncio.to_thread(
            self.store.finish_job,
            job_id,
            "failed",
            reply=message,
            error=error or message,
            undo=undo,
        )
        return Reply(message, error=True)

    async def _resume(self, job: Job, user: str, user_id: int) -> Reply:
        """Carry out a job left unfinished by the last run."""
        job_id = job.id or 0
        if job.kind == "photo":
            path = self.store.files_dir / (job.photo_path or "")
            if not job.photo_path or not path.is_file():
                return await self._fail(
                    job_id, "I lost a photo you sent in a restart; please send it again."
                )
            photo = await asyncio.to_thread(path.read_bytes)
            return await self._encode(job_id, user_id, photo, "", None)
        face = await asyncio.to_thread(self.store.get_face, job.face_id or 0)
        current = await asyncio.to_thread(self.store.current_edit, face.id or 0)
        if current is None or current.id != job.edit_id:
            # Moved on before the restart (undo, a newer edit): nothing is owed.
            await asyncio.to_thread(self.store.finish_job, job_id, "cancelled")
            return SILENT
        plan = EditPlan("edit", steps=job.steps)
        return await self._render(job_id, user, user_id, face, current, plan, job.reply, None)

    # --- commands that read no history ------------------------------------------------------

    def _status(self, user: str) -> Reply:
        stats = self.queue.stats()
        waiting = f"{stats.queued} render(s) waiting, {stats.running} rendering."
        active = self._active.get(self._queue_user(user))
        position = None if active is None else self.queue.position(active[0])
        if position is None:
            return Reply(f"Nothing of yours is waiting. Queue: {waiting}")
        if position == 0:
            return Reply(f"Your edit is rendering now. Queue: {waiting}")
        return Reply(f"Your edit is number {position} in the queue. Queue: {waiting}")

    async def _cancel(self, user: str) -> Reply:
        active = self._active.get(self._queue_user(user))
        if active is None or active[0].state not in ("queued", "running"):
            return Reply("Nothing of yours is waiting to be cancelled.")
        job, job_id = active
        if job_id is not None:
            self._cancelled.add(job_id)
        self.queue.cancel(job)
        return Reply("Cancelled your edit; the photo stays as it was before it.")

    async def _forget(self, user: str, arg: str) -> Reply:
        answer = arg.strip().lower()
        if answer in ("no", "n", "cancel"):
            return Reply("Nothing was deleted.")
        if answer not in ("yes", "y"):
            return Reply(FORGET_ASK, confirm="forget")
        active = self._active.pop(self._queue_user(user), None)
        if active is not None:
            self.queue.cancel(active[0])
        counts = await asyncio.to_thread(self.store.forget_user, self.platform, user)
        self._faces.clear()  # cheap to refill; no face of this user may stay in memory
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
            lines.append(
                f"{edit.seq}. {_describe(edit.plan_json)}{'  <- now' if edit.seq == cursor else ''}"
            )
        return Reply("\n".join(lines))

    # --- faces --------------------------------------------------------------------------

    def _remember(self, face_id: int, opened: OpenedFace, latents: bytes) -> None:
        self._faces[face_id] = (opened, latents)
        self._faces.move_to_end(face_id)
        while len(self._faces) > self._cache_size:
            self._faces.popitem(last=False)

    async def _opened(self, face: Face) -> tuple[OpenedFace, bytes]:
        """The decoded face and its latents blob, from the cache or rebuilt from storage
        (after a restart, or when the cache dropped it)."""
        cached = self._faces.get(face.id or 0)
        if cached is None:
            cached = await asyncio.to_thread(self._decode, face)
        self._remember(face.id or 0, *cached)
        return cached

    def _decode(self, face: Face) -> tuple[OpenedFace, bytes]:
        from PIL import Image

        from chatface.engine.editor import OpenedFace
        from chatface.engine.faces import AlignedFace, load_image

        if not face.photo_path:
            raise StorageError("This face has no stored photo; please send the photo again.")
        aligned = AlignedFace.from_to_photo(
            Image.open(io.BytesIO(face.aligned_png)).convert("RGB"),
            json.loads(face.inverse_transform),
        )
        photo = load_image(self.store.files_dir / face.photo_path)
        latents = Latents.from_bytes(face.latents)
        return OpenedFace(photo, aligned, latents, face.backend, 1), face.latents

    def _stored_result(self, current: Edit | None, *, read: bool = True) -> bytes | None:
        """The stored image of ``current`` (with ``read=False``: b"" when there is one)."""
        if current is None or not current.result_path:
            return None
        path = self.store.files_dir / current.result_path
        if not path.is_file():
            return None
        return path.read_bytes() if read else b""

    async def _image_reply(self, text: str, image: Image.Image, plan: EditPlan | None) -> Reply:
        from chatface.engine.photos import encode_image

        data, kind = await self.queue.postprocess(encode_image, image)
        return Reply(text, data, kind, plan)


def _on_loop(progress: Progress | None) -> Progress | None:
    """``progress`` for work on another thread: called on this event loop, throttled like
    the render queue's reports (always the last step)."""
    if progress is None:
        return None
    loop = asyncio.get_running_loop()
    last = float("-inf")

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < PROGRESS_INTERVAL_S:
            return
        last = now
        loop.call_soon_threadsafe(progress, done, total)

    return report


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


def _finish(opened: OpenedFace, crop: object, path: object) -> bytes:
    """Paste the rendered crop back into the photo, encode it once, keep it on disk.
    Runs in the queue's post-processing pool, never on the model thread."""
    from chatface.engine import faces
    from chatface.engine.photos import encode_image

    photo = faces.paste_back(opened.photo, faces.to_image(crop), opened.aligned)
    data, _ = encode_image(photo)
    if path is not None:
        atomic_write(path, data)  # type: ignore[arg-type]
    return data

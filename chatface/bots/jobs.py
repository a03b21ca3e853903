"""The jobs a bot owes its users: photos to encode and edits to render.

Each job is a row written before the work starts (by the turn that asks for it), carried
out here, and ended in one write with its result and reply; a job the last run left
unfinished (a crash, kill -9, a stop) is carried out by :meth:`Jobs.recover` at the next
start. Photo jobs are in :mod:`chatface.bots.photo_jobs`. Renders go through the render
queue as data-only requests, keyed by the chat (user and chat), so a newer edit replaces
only the same chat's waiting one. A failed or cancelled render takes its edit back; a
render overtaken by a newer move (an undo sent while it rendered) is kept for redo but
not sent; work cut off by the queue closing stays unfinished, for the next start.

Several bot processes may share one database: each job row names its owner (the
process's run, see :mod:`chatface.bots.runs`), and a process recovers only the jobs of
stopped runs that it claims, so processes starting at once share them out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from chatface.bots.identity import guard_note, turn_before
from chatface.bots.photo_jobs import PhotoJobs, discard
from chatface.bots.replies import FAILED, SILENT, Delivery, Reply
from chatface.bots.runs import Run
from chatface.engine.batch import RenderRequest
from chatface.engine.queue import JobCancelledError, JobReplacedError
from chatface.engine.types import EditPlan, Progress, SessionState
from chatface.errors import ChatFaceError
from chatface.files import atomic_write
from chatface.storage.models import Face, Job, utc_now
from chatface.storage.turns import JobEnd, Rendering

if TYPE_CHECKING:
    from chatface.bots.faces import FaceCache
    from chatface.engine.editor import Engine, OpenedFace
    from chatface.engine.queue import RenderJob, RenderQueue
    from chatface.storage import Edit, Store

logger = logging.getLogger(__name__)

KEEP_HANDLED = timedelta(days=7)  # update ids and finished jobs are kept this long
Deliver = Callable[[Delivery], Awaitable[None]]


def new_incoming(store: Store) -> Path:
    """Where a photo waits until its face is stored: a name of its own for each message."""
    return store.files_dir / "incoming" / f"{uuid.uuid4().hex}.bin"


class Jobs(PhotoJobs):
    """Carries out the jobs of one platform's users; knows each chat's newest render."""

    def __init__(
        self,
        engine: Engine,
        store: Store,
        queue: RenderQueue,
        faces: FaceCache,
        platform: str,
        backend: str,
    ) -> None:
        self.engine, self.store, self.queue, self.faces = engine, store, queue, faces
        self.platform, self.backend = platform, backend  # the backend for new photos
        self._active: dict[tuple[str, str], tuple[RenderJob, int]] = {}  # (user, chat) ->
        self._cancelled: set[int] = set()  # job rows cancelled with /cancel
        # Owns this run's jobs: they are being carried out, never recovered by it.
        self.run = Run(engine.config.data_dir)
        self.run_id = self.run.id

    def new(self, kind: str, **fields: object) -> Job:
        """A job row of this run, for ``Store.write_turn`` to add."""
        return Job(kind=kind, owner=self.run_id, **fields)

    async def _finish(self, job_id: int, state: str, **fields: object) -> JobEnd:
        """End this run's job ``job_id`` (see ``Store.finish_job``)."""
        end = functools.partial(self.store.finish_job, job_id, state, owner=self.run_id)
        return await asyncio.to_thread(end, **fields)  # type: ignore[arg-type]

    async def recover(self, deliver: Deliver) -> int:
        """Carry out the jobs that were queued or running when this platform's bot
        stopped: those of runs that ended, each one this run claims (another process
        starting at once may claim it first); each reply goes to ``deliver`` as soon as
        its job is done. Returns how many jobs there were."""
        await asyncio.to_thread(self.store.prune, utc_now() - KEEP_HANDLED)
        rows = await asyncio.to_thread(self.store.unfinished_jobs, self.platform, self.run_id)
        # After the rows: each owner among them locked its file before writing its jobs.
        alive = await asyncio.to_thread(self.run.others_alive)
        rows = [row for row in rows if row[0].owner not in alive]
        if rows:
            logger.info("Recovering %d unfinished job(s)", len(rows))

        async def one(job: Job, user_id: int, user: str, chat: str) -> None:
            if not await asyncio.to_thread(self.store.claim_job, job, self.run_id):
                return  # another process carries it out
            try:
                reply = await self._resume(job, user, chat, user_id)
            except Exception:
                logger.exception("Could not recover job %s", job.id)
                reply = await self._fail(job.id or 0, FAILED, "recovery")
            if not reply.empty:
                await deliver(Delivery(user, chat, reply))

        results = await asyncio.gather(*(one(*row) for row in rows), return_exceptions=True)
        for error in results:
            if isinstance(error, Exception):
                logger.error("A recovered reply could not be delivered: %s", error)
        return len(rows)

    # --- renders ------------------------------------------------------------------------

    def rendering(self, plan: EditPlan, state_json: str) -> Rendering:
        """How ``plan``'s render job renders the state ``state_json``: the plan's steps
        (default ``render.steps``) and schedule (see ``Engine.schedule_for``); with the
        identity guard on, an edit turn is served no stored result below its threshold."""
        config = self.engine.config
        state = SessionState.from_json(state_json)
        guarded = plan.action == "edit" and config["identity.measure"] and config["identity.guard"]
        return Rendering(
            plan.steps or config["render.steps"],
            self.engine.schedule_for(state, plan.schedule),
            float(config["identity.guard_threshold"]) if guarded else None,
        )

    async def render(
        self,
        job_id: int,
        user: str,
        chat: str,
        user_id: int,
        face: Face,
        current: Edit,
        plan: EditPlan,
        text: str,
        progress: Progress | None,
        *,
        guard: bool = True,
    ) -> Reply:
        """A render job: render the current edit's state, paste it back, store it.
        The identity guard may lower an edit turn's strength (``plan`` an edit, ``guard``
        True: this turn appended ``current``); never an undo, redo, reset or recovery."""
        key = (user, chat)
        config = self.engine.config
        try:
            opened, latents, aligned_png = await self.faces.opened(face)
            state = SessionState.from_json(current.state_json)
            original, previous = b"", None
            if config["identity.measure"]:
                original = aligned_png  # as stored: never encoded again
                if config["identity.guard"] and guard and plan.action == "edit":
                    previous = await asyncio.to_thread(turn_before, self.store, current)
            how = self.rendering(plan, current.state_json)
            request = RenderRequest.make(
                uuid.uuid4().hex,
                latents,
                state,
                steps=how.steps,
                schedule=how.schedule,
                backend=face.backend,
                user=f"{self.platform}:{user}/{chat}",  # a newer edit replaces this chat's
                original=original,
                previous=previous,
            )
            job = await self.queue.submit(request, self._started(job_id, progress))
        except JobCancelledError:
            return SILENT  # the queue closed: the next start does the job
        except ChatFaceError as exc:  # the queue is full, the face is gone, ...
            return await self._fail(job_id, str(exc), undo=True)
        self._active[key] = (job, job_id)
        try:
            result = await job.result()
        except JobReplacedError:
            await self._finish(job_id, "cancelled")
            return SILENT  # the newer message answers
        except JobCancelledError:
            if job_id not in self._cancelled:
                return SILENT  # the queue closed: the next start does the job
            self._cancelled.discard(job_id)
            await self._finish(job_id, "cancelled", undo=True)
            return SILENT  # /cancel answers
        except ChatFaceError as exc:
            return await self._fail(job_id, str(exc), undo=True)
        except Exception:
            logger.exception("Rendering failed (job %s)", job_id)
            return await self._fail(job_id, FAILED, "unexpected error", undo=True)
        finally:
            if self._active.get(key, (None,))[0] is job:
                del self._active[key]
        path = self.store.result_file(user_id, current)
        relative = str(path.relative_to(self.store.files_dir))
        rendered = None
        if result.guarded is not None:
            text = f"{text} {guard_note(result.guarded, result.identity)}"
            rendered = SessionState(dict(result.strengths)).to_json()
        try:
            image = await self.queue.postprocess(_finish, opened, result.crop, path)
            end = await self._finish(
                job_id, "done", reply=text, result_path=relative, identity=result.identity,
                state_json=rendered, steps=request.steps, schedule=request.schedule,
            )  # fmt: skip
        except JobCancelledError:
            return SILENT
        except Exception:
            logger.exception("Storing a result failed (job %s)", job_id)
            return await self._fail(job_id, FAILED, "unexpected error", undo=True)
        if end.lost:  # another process claimed the job: it answers (the same file)
            return SILENT
        if not end.found:  # forgotten meanwhile
            await asyncio.to_thread(discard, path)
            return SILENT
        if not end.current:  # overtaken (an undo, a newer edit): kept for redo, not sent
            return SILENT
        return Reply(text, image, "image/png", plan)

    def _started(self, job_id: int, progress: Progress | None) -> Progress:
        """The job's progress callback; the first report marks the job row running."""
        started = False

        def report(done: int, total: int) -> None:
            nonlocal started
            if not started:
                started = True
                asyncio.get_running_loop().run_in_executor(
                    None, self.store.mark_running, job_id
                ).add_done_callback(_log_failure)
            if progress is not None:
                progress(done, total)

        return report

    async def _fail(
        self, job_id: int, message: str, error: str | None = None, *, undo: bool = False
    ) -> Reply:
        end = await self._finish(job_id, "failed", reply=message, error=error or message, undo=undo)
        return SILENT if end.lost else Reply(message, error=True)

    async def _resume(self, job: Job, user: str, chat: str, user_id: int) -> Reply:
        """Carry out a job left unfinished by the last run."""
        job_id = job.id or 0
        if job.kind == "photo":
            path = self.store.files_dir / (job.photo_path or "")
            if not job.photo_path or not path.is_file():
                return await self._fail(
                    job_id, "I lost a photo you sent in a restart; please send it again."
                )
            photo = await asyncio.to_thread(path.read_bytes)
            return await self.encode(job_id, user_id, photo, "", None, path)
        face = await asyncio.to_thread(self.store.get_face, job.face_id or 0)
        current = await asyncio.to_thread(self.store.current_edit, face.id or 0)
        if current is None or current.id != job.edit_id:
            # Moved on before the restart (undo, a newer edit): nothing is owed.
            await self._finish(job_id, "cancelled")
            return SILENT
        plan = EditPlan("edit", steps=job.steps, schedule=job.schedule)
        return await self.render(
            job_id, user, chat, user_id, face, current, plan, job.reply, None, guard=False
        )

    # --- /status, /cancel, /forget ------------------------------------------------------

    def status(self, user: str, chat: str) -> Reply:
        stats = self.queue.stats()
        waiting = f"{stats.queued} render(s) waiting, {stats.running} rendering."
        active = self._active.get((user, chat))
        position = None if active is None else self.queue.position(active[0])
        if position is None:
            return Reply(f"Nothing of yours is waiting. Queue: {waiting}")
        if position == 0:
            return Reply(f"Your edit is rendering now. Queue: {waiting}")
        return Reply(f"Your edit is number {position} in the queue. Queue: {waiting}")

    def cancel(self, user: str, chat: str) -> Reply:
        active = self._active.get((user, chat))
        if active is None or active[0].state not in ("queued", "running"):
            return Reply("Nothing of yours is waiting to be cancelled.")
        job, job_id = active
        self._cancelled.add(job_id)
        self.queue.cancel(job)
        return Reply("Cancelled your edit; the photo stays as it was before it.")

    def drop(self, user: str) -> None:
        """Cancel the user's renders in every chat, unseen (the user is being forgotten)."""
        for key in [key for key in self._active if key[0] == user]:
            self.queue.cancel(self._active.pop(key)[0])


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        logger.warning("Could not mark a job running: %s", error)


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

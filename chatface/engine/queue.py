"""The render queue: front ends submit data-only render requests and await the results.

``RenderQueue`` is the interface (submit -> awaitable job, cancel, position, stats);
``LocalRenderQueue`` implements it in one process: an asyncio front, one model thread
that owns the models and renders batches (``Engine.render_batch``), and a small thread
pool for the work around a render (paste-back, image encoding) so that it never holds
up the model thread or the event loop. The same front can send its batches elsewhere
instead (``queue.kind = "ray"``: :mod:`chatface.engine.ray_serve`), several at a time.

Scheduling, as a chat needs it:
- bounded: at most ``queue.max_pending`` queued jobs; more are refused (``QueueFullError``);
- fair: batches take users in round-robin order, one job per user per batch;
- per user: at most ``queue.per_user_pending`` queued jobs, and a newer edit replaces that
  user's queued, not yet started one (``JobReplacedError`` for the old one);
- batching: a batch waits at most ``queue.batch_window_ms`` to fill up to
  ``queue.max_batch``; the next batch is formed when one of ``in_flight`` render slots
  is free (one for the model thread), so waiting jobs stay replaceable and in fair order;
- progress: each job's ``progress(done, total)`` runs on the event loop, throttled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from chatface.errors import ChatFaceError, ConfigError

if TYPE_CHECKING:
    from chatface.engine.batch import RenderRequest, RenderResult
    from chatface.engine.editor import Engine, OpenedFace
    from chatface.engine.types import Progress

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Renders a batch on the model thread: one result per request, in order.
BatchRenderer = Callable[[Sequence["RenderRequest"], "Progress"], list["RenderResult"]]
# Renders a batch elsewhere, awaited on the event loop: a request's result may be the
# exception that failed it alone.
RemoteRenderer = Callable[
    [Sequence["RenderRequest"], "Progress"], Awaitable[list["RenderResult | Exception"]]
]


class QueueFullError(ChatFaceError):
    """The queue (or this user's share of it) is full; try again in a moment."""


class JobReplacedError(ChatFaceError):
    """A newer edit from the same user replaced this job before it started."""


class JobCancelledError(ChatFaceError):
    """The job was cancelled, or the queue closed before it ran."""


@dataclass
class QueueStats:
    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    replaced: int = 0
    cancelled: int = 0
    batches: int = 0
    rendered: int = 0  # jobs rendered in batches (mean batch size = rendered / batches)


class RenderJob:
    """A submitted request: await ``result()``; ``state`` says where it is."""

    def __init__(self, request: RenderRequest, progress: Progress | None, seq: int) -> None:
        self.request = request
        self.progress = progress
        self.seq = seq
        self.state = "queued"  # queued, running, done, failed, replaced, cancelled
        self.submitted = time.monotonic()
        self.future: asyncio.Future[RenderResult] = asyncio.get_running_loop().create_future()

    @property
    def user(self) -> str:
        return self.request.user

    async def result(self) -> RenderResult:
        return await self.future

    def _finish(self, state: str, result: Any = None, error: BaseException | None = None):
        self.state = state
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
            self.future.exception()  # retrieved here: nobody awaiting a replaced job is fine
        else:
            self.future.set_result(result)


class RenderQueue(Protocol):
    """What front ends use; a Ray Serve deployment can implement the same."""

    async def submit(
        self, request: RenderRequest, progress: Progress | None = None, *, replace: bool = True
    ) -> RenderJob: ...

    renders_here: bool  # False: renders run elsewhere (replicas), not on this engine

    def cancel(self, job: RenderJob) -> bool: ...

    def position(self, job: RenderJob) -> int | None: ...

    def stats(self) -> QueueStats: ...

    async def run_model(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    async def open_face(
        self, photo: bytes, *, backend: str, progress: Progress | None = None
    ) -> OpenedFace: ...

    async def weights_of(self, backend: str) -> str: ...

    async def postprocess(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def close(self) -> None: ...


class LocalRenderQueue:
    """The queue in this process (see the module docstring). Create it inside a running
    event loop; ``await close()`` when done."""

    renders_here = True  # the models that render are this process's (the engine's)

    def __init__(
        self,
        render_batch: BatchRenderer | RemoteRenderer,
        *,
        max_pending: int = 64,
        max_batch: int = 8,
        per_user_pending: int = 2,
        batch_window_s: float = 0.025,
        progress_interval_s: float = 0.25,
        post_workers: int = 2,
        in_flight: int = 1,
        engine: Engine | None = None,
    ) -> None:
        self.engine = engine  # for the model work besides renders (open_face, weights_of)
        self._render_batch = render_batch
        self._remote = any(  # an async function, or an object with an async __call__
            map(inspect.iscoroutinefunction, (render_batch, type(render_batch).__call__))
        )
        self.max_pending, self.max_batch = max_pending, max_batch
        self.per_user_pending, self.batch_window_s = per_user_pending, batch_window_s
        self.progress_interval_s = progress_interval_s
        self._loop = asyncio.get_running_loop()
        self._users: OrderedDict[str, deque[RenderJob]] = OrderedDict()  # round-robin order
        self._running: set[RenderJob] = set()
        self._forming: list[RenderJob] = []  # taken for the next batch, not started yet
        self._slots = asyncio.Semaphore(in_flight)  # batches rendering at once
        self._renders: set[asyncio.Task[None]] = set()
        self._stats = QueueStats()
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._closed = False
        self._model = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatface-model")
        self._post = ThreadPoolExecutor(post_workers, thread_name_prefix="chatface-post")
        self._worker = self._loop.create_task(self._run(), name="chatface-render-queue")

    @classmethod
    def from_engine(
        cls,
        engine: Engine,
        render_batch: BatchRenderer | RemoteRenderer | None = None,
        in_flight: int = 1,
    ) -> LocalRenderQueue:
        """A queue over ``render_batch`` (default ``engine.render_batch``) with the
        ``queue.*`` settings."""
        config = engine.config
        return cls(
            render_batch or engine.render_batch,
            in_flight=in_flight,
            engine=engine,
            max_pending=config["queue.max_pending"],
            max_batch=config["queue.max_batch"],
            per_user_pending=config["queue.per_user_pending"],
            batch_window_s=config["queue.batch_window_ms"] / 1000,
        )

    # --- the interface ---------------------------------------------------------------

    async def submit(
        self, request: RenderRequest, progress: Progress | None = None, *, replace: bool = True
    ) -> RenderJob:
        """Queue ``request``; with ``replace``, it replaces the user's queued jobs."""
        if self._closed:
            raise JobCancelledError("The render queue is closed.")
        waiting = self._users.get(request.user, deque())
        if replace:
            while waiting:
                self._stats.replaced += 1
                waiting.popleft()._finish(
                    "replaced", error=JobReplacedError("A newer edit replaced this one.")
                )
        elif len(waiting) >= self.per_user_pending:
            raise QueueFullError(
                f"You already have {len(waiting)} edits waiting; wait for them to finish."
            )
        if self._queued() >= self.max_pending:
            raise QueueFullError("Many people are editing right now; try again in a minute.")
        job = RenderJob(request, progress, next(self._seq))
        self._users.setdefault(request.user, waiting).append(job)
        self._wake.set()
        return job

    def cancel(self, job: RenderJob) -> bool:
        """Cancel a queued or running job (a running render finishes, unseen)."""
        if job in self._forming:
            self._forming.remove(job)
        elif job.state == "queued":
            self._users[job.user].remove(job)
        elif job.state != "running":
            return False
        self._stats.cancelled += 1
        job._finish("cancelled", error=JobCancelledError("Cancelled."))
        return True

    def position(self, job: RenderJob) -> int | None:
        """0 while rendering, n when n - 1 jobs go first, None when finished."""
        if job.state == "running":
            return 0
        if job.state != "queued":
            return None
        return (self._forming + self._fair_order()).index(job) + 1

    def stats(self) -> QueueStats:
        queued, running = self._queued(), sum(j.state == "running" for j in self._running)
        return QueueStats(**{**self._stats.__dict__, "queued": queued, "running": running})

    async def run_model(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run other model work (encoding a new face) on the model thread, between
        batches: the models are only ever used from that one thread."""
        return await self._in(self._model, functools.partial(fn, *args, **kwargs))

    async def open_face(
        self, photo: bytes, *, backend: str, progress: Progress | None = None
    ) -> OpenedFace:
        """Find, align and encode the photo's face (``Engine.open_face``) on the model
        thread."""
        return await self.run_model(
            self._engine().open_face, photo, backend=backend, progress=progress
        )

    async def weights_of(self, backend: str) -> str:
        """What identifies ``backend``'s weights (stored with each face it encodes)."""
        return await self.run_model(lambda: self._engine().backend(backend).weights_sha256)

    def _engine(self) -> Engine:
        if self.engine is None:
            raise TypeError("This queue was made without an engine (use from_engine).")
        return self.engine

    async def postprocess(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (paste-back, encoding) in the small pool, off the model thread."""
        return await self._in(self._post, functools.partial(fn, *args))

    async def _in(self, pool: ThreadPoolExecutor, call: Callable[[], T]) -> T:
        """``call()`` in ``pool``; ``JobCancelledError`` once the queue is closed."""
        if self._closed:
            raise JobCancelledError("The render queue is closed.")
        try:
            return await self._loop.run_in_executor(pool, call)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and not (task and task.cancelling()):  # close() dropped it
                raise JobCancelledError("The render queue closed.") from None
            raise

    async def close(self) -> None:
        self._closed = True
        self._worker.cancel()
        for task in self._renders:
            task.cancel()
        for job in self._forming + self._fair_order() + list(self._running):
            job._finish("cancelled", error=JobCancelledError("The render queue closed."))
        self._users.clear()
        self._model.shutdown(wait=False, cancel_futures=True)
        self._post.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        await asyncio.gather(*self._renders, return_exceptions=True)

    # --- scheduling --------------------------------------------------------------------

    def _queued(self) -> int:
        return len(self._forming) + sum(len(jobs) for jobs in self._users.values())

    def _fair_order(self) -> list[RenderJob]:
        """Queued jobs in the order batches will take them: round-robin over users."""
        columns = [list(jobs) for jobs in self._users.values()]
        rounds = itertools.zip_longest(*columns)
        return [job for row in rounds for job in row if job is not None]

    def _take(self, room: int, taken: list[RenderJob]) -> None:
        """Add up to ``room`` jobs to ``taken``: one per user, in round-robin order."""
        users = {job.user for job in taken}
        for user in list(self._users):
            if room <= 0:
                break
            jobs = self._users[user]
            if jobs and user not in users:
                taken.append(jobs.popleft())
                users.add(user)
                room -= 1
                self._users.move_to_end(user)  # the next batch starts with someone else
            if not jobs:
                del self._users[user]

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            batch = await self._next_batch()
            task = self._loop.create_task(self._render(batch), name="chatface-render-batch")
            self._renders.add(task)
            task.add_done_callback(self._rendered)

    def _rendered(self, task: asyncio.Task[None]) -> None:
        self._renders.discard(task)
        self._slots.release()

    async def _next_batch(self) -> list[RenderJob]:
        """The next batch: the first queued jobs, then those arriving within the window."""
        batch = self._forming = []
        while not batch:
            self._take(self.max_batch, batch)
            if not batch:
                await self._wake.wait()
                self._wake.clear()
        deadline = self._loop.time() + self.batch_window_s
        while len(batch) < self.max_batch and (left := deadline - self._loop.time()) > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                break
            self._wake.clear()
            self._take(self.max_batch - len(batch), batch)
        self._forming = []
        return batch

    async def _render(self, batch: list[RenderJob]) -> None:
        batch = [job for job in batch if job.state == "queued"]
        for job in batch:
            job.state = "running"
        self._running.update(batch)
        requests = [job.request for job in batch]
        progress = self._progress_for(batch)
        try:
            if self._remote:
                results = await self._render_batch(requests, progress)  # type: ignore[misc]
            else:
                results = await self._loop.run_in_executor(
                    self._model, self._render_batch, requests, progress
                )
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} renders")
        except Exception as exc:  # a bad request or a model error fails this batch only
            logger.exception("render batch of %d failed", len(batch))
            results = [exc] * len(batch)
        finally:
            self._running.difference_update(batch)
        self._stats.batches += 1
        self._stats.rendered += len(batch)
        for job, result in zip(batch, results, strict=True):
            if job.state != "running":
                continue
            if isinstance(result, Exception):
                self._stats.failed += 1
                job._finish("failed", error=result)
            else:
                self._stats.done += 1
                job._finish("done", result)

    def _progress_for(self, batch: list[RenderJob]) -> Progress:
        """A callback for the model thread that forwards to each job on the event loop."""
        callbacks = [job.progress for job in batch if job.progress is not None]
        return forward_progress(self._loop, callbacks, self.progress_interval_s)


async def make_queue(engine: Engine) -> RenderQueue:
    """The render queue the ``queue.kind`` setting names: ``local`` (renders on this
    process's model thread) or ``ray`` (on Ray Serve replicas,
    :mod:`chatface.engine.ray_serve`, two batches per replica in flight). Call it inside
    a running event loop."""
    config = engine.config
    kind = config["queue.kind"]
    if kind == "local":
        return LocalRenderQueue.from_engine(engine)
    if kind != "ray":
        raise ConfigError(f"queue.kind must be 'local' or 'ray'; got {kind!r}.")
    from chatface.engine import ray_serve

    try:
        renderer = await asyncio.to_thread(ray_serve.connect, engine)
    except ray_serve.RayUnavailableError as exc:
        if not config["queue.ray_fallback"]:
            raise
        logger.warning("%s Rendering in this process instead (queue.ray_fallback).", exc)
        return LocalRenderQueue.from_engine(engine)
    finally:
        ray_serve.reinstall_signal_handlers()
    replicas = max(int(config["queue.ray_replicas"]), int(config["queue.ray_max_replicas"]))
    return ray_serve.RayRenderQueue.from_engine(engine, renderer, in_flight=2 * replicas)


def forward_progress(
    loop: asyncio.AbstractEventLoop, callbacks: Sequence[Progress], interval_s: float
) -> Progress:
    """A progress callback for work on another thread: it calls each of ``callbacks`` on
    ``loop``, at most every ``interval_s`` (and always for the last step)."""
    last = float("-inf")
    lock = threading.Lock()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        with lock:
            if done < total and now - last < interval_s:
                return
            last = now
        for callback in callbacks:
            loop.call_soon_threadsafe(callback, done, total)

    return report

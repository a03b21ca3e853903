"""The local render queue: fair batches across users, limits, replacement, progress.

Scheduling tests use a stub renderer that blocks on an event, so the order of events is
fixed without sleeping; the last test renders real (tiny) faces through the queue.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import pytest
import torch

from chatface.engine.batch import RenderRequest, RenderResult
from chatface.engine.editor import Engine
from chatface.engine.queue import (
    JobCancelledError,
    JobReplacedError,
    LocalRenderQueue,
    QueueFullError,
)
from chatface.engine.types import SessionState


def request(job: str, user: str) -> RenderRequest:
    return RenderRequest(job, b"", (), 2, "stable", "tiny", user)


class StubRenderer:
    """Records each batch; holds the model thread until ``release`` while ``hold`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[int] = set()
        self.hold = threading.Event()
        self.release = threading.Event()
        self.started = threading.Event()
        self.steps = 1

    def __call__(self, requests: Sequence[RenderRequest], progress) -> list[RenderResult]:  # type: ignore[no-untyped-def]
        self.threads.add(threading.get_ident())
        self.batches.append([r.job_id for r in requests])
        self.started.set()
        if self.hold.is_set():
            assert self.release.wait(10), "the test never released the model thread"
        for step in range(1, self.steps + 1):
            progress(step, self.steps)
        return [RenderResult(r.job_id, torch.zeros(1), len(requests), 0.0) for r in requests]


def run(test: Callable[..., object], **queue_options: object) -> StubRenderer:
    renderer = StubRenderer()

    async def main() -> None:
        queue = LocalRenderQueue(renderer, **queue_options)
        try:
            await test(queue, renderer)
        finally:
            await queue.close()

    asyncio.run(main())
    return renderer


async def until_started(renderer: StubRenderer) -> None:
    """Wait (off the loop) until the model thread has taken a batch."""
    assert await asyncio.to_thread(renderer.started.wait, 10)
    renderer.started.clear()


def test_batches_are_fair_across_users_one_job_each() -> None:
    async def test(queue: LocalRenderQueue, renderer: StubRenderer) -> None:
        renderer.hold.set()
        first = await queue.submit(request("busy", "zoe"))
        await until_started(renderer)  # the model thread is now busy with zoe's job
        jobs = [await queue.submit(request(f"a{i}", "alice"), replace=False) for i in (1, 2)]
        jobs += [await queue.submit(request("b1", "bob"))]
        jobs += [await queue.submit(request("c1", "carol"))]
        assert [queue.position(j) for j in jobs] == [1, 4, 2, 3]  # round robin, not FIFO
        assert queue.position(first) == 0 and queue.stats().queued == 4
        renderer.hold.clear()
        renderer.release.set()
        await asyncio.gather(*(j.result() for j in jobs))
        assert queue.stats().done == 5 and queue.stats().batches == 3

    renderer = run(test, max_batch=8, batch_window_s=0)
    assert renderer.batches == [["busy"], ["a1", "b1", "c1"], ["a2"]]


def test_a_newer_edit_replaces_the_users_waiting_one() -> None:
    async def test(queue: LocalRenderQueue, renderer: StubRenderer) -> None:
        renderer.hold.set()
        await queue.submit(request("busy", "zoe"))
        await until_started(renderer)
        old = await queue.submit(request("smile", "alice"))
        new = await queue.submit(request("smile more", "alice"))
        with pytest.raises(JobReplacedError):
            await old.result()
        assert old.state == "replaced" and queue.position(old) is None
        renderer.release.set()
        assert (await new.result()).job_id == "smile more"
        assert queue.stats().replaced == 1

    renderer = run(test, batch_window_s=0)
    assert renderer.batches == [["busy"], ["smile more"]]


def test_limits_refuse_politely() -> None:
    async def test(queue: LocalRenderQueue, renderer: StubRenderer) -> None:
        renderer.hold.set()
        await queue.submit(request("busy", "zoe"))
        await until_started(renderer)
        await queue.submit(request("a1", "alice"), replace=False)
        with pytest.raises(QueueFullError, match="already have 1 edits waiting"):
            await queue.submit(request("a2", "alice"), replace=False)
        await queue.submit(request("b1", "bob"))
        with pytest.raises(QueueFullError, match="try again in a minute"):
            await queue.submit(request("c1", "carol"))
        renderer.release.set()

    run(test, max_pending=2, per_user_pending=1, batch_window_s=0)


def test_a_batch_waits_for_others_to_join_but_starts_once_full() -> None:
    async def test(queue: LocalRenderQueue, renderer: StubRenderer) -> None:
        started = time.monotonic()
        a = await queue.submit(request("a", "alice"))
        await asyncio.sleep(0)  # the worker takes a and waits for the window
        b = await queue.submit(request("b", "bob"))  # joins; the batch is full: it starts
        await asyncio.gather(a.result(), b.result())
        assert time.monotonic() - started < 5  # did not wait out the 30 s window

    renderer = run(test, max_batch=2, batch_window_s=30)
    assert renderer.batches == [["a", "b"]]


def test_cancel_and_progress_on_the_loop_thread_and_model_work_off_it() -> None:
    seen: list[tuple[int, int, int]] = []

    async def test(queue: LocalRenderQueue, renderer: StubRenderer) -> None:
        loop_thread = threading.get_ident()
        renderer.hold.set()
        await queue.submit(request("busy", "zoe"))
        await until_started(renderer)
        doomed = await queue.submit(request("x", "alice"))
        assert queue.cancel(doomed) and not queue.cancel(doomed)
        with pytest.raises(JobCancelledError):
            await doomed.result()
        renderer.steps = 500
        job = await queue.submit(
            request("y", "bob"), progress=lambda d, t: seen.append((d, t, threading.get_ident()))
        )
        renderer.hold.clear()
        renderer.release.set()
        await job.result()
        await asyncio.sleep(0)  # progress callbacks are scheduled on the loop
        assert seen[-1][:2] == (500, 500)
        assert 1 <= len(seen) < 50  # throttled: not one call per step
        assert {thread for _, _, thread in seen} == {loop_thread}
        assert loop_thread not in renderer.threads and len(renderer.threads) == 1
        post_thread = await queue.postprocess(threading.get_ident)
        assert post_thread not in (loop_thread, *renderer.threads)

    run(test, batch_window_s=0)


def test_real_faces_of_three_users_share_one_model_call() -> None:
    from tests.engine.test_batch import RENDER_TOLERANCE, encoded_faces

    engine = Engine()
    faces = encoded_faces(engine, 3)
    states = [SessionState({"smile": 0.5}), SessionState({"age": 0.7}), SessionState()]

    async def main() -> list[RenderResult]:
        queue = LocalRenderQueue.from_engine(engine)
        try:
            jobs = [
                await queue.submit(
                    RenderRequest.make(
                        f"j{i}",
                        face,
                        state,
                        steps=3,
                        schedule="stable",
                        backend="tiny",
                        user=f"user{i}",
                    )
                )  # fmt: skip
                for i, (face, state) in enumerate(zip(faces, states, strict=True))
            ]
            results = await asyncio.gather(*(job.result() for job in jobs))
            assert queue.stats().batches == 1
            return list(results)
        finally:
            await queue.close()

    results = asyncio.run(main())
    assert [r.batch_size for r in results] == [3, 3, 3]
    for face, state, result in zip(faces, states, results, strict=True):
        alone = engine.render_latents(face, state, backend="tiny", steps=3)[0]
        assert (result.crop - alone).abs().max().item() <= RENDER_TOLERANCE


def test_a_remote_renderer_gets_several_batches_at_once_and_fails_renders_alone() -> None:
    """An async renderer (the Ray front's kind) renders up to ``in_flight`` batches at
    once on the event loop; a render's own error fails that job only."""
    gate = asyncio.Event()
    seen: list[list[str]] = []
    steps: list[tuple[int, int]] = []

    async def remote(requests, progress):  # type: ignore[no-untyped-def]
        seen.append([r.job_id for r in requests])
        await gate.wait()
        progress(1, 1)
        return [
            ValueError(f"bad {r.job_id}") if r.job_id == "b" else
            RenderResult(r.job_id, torch.zeros(1), len(requests), 0.0)
            for r in requests
        ]  # fmt: skip

    async def main() -> None:
        queue = LocalRenderQueue(remote, max_batch=1, batch_window_s=0, in_flight=2)
        try:
            a = await queue.submit(request("a", "ann"), lambda *s: steps.append(s))
            b = await queue.submit(request("b", "bob"))
            c = await queue.submit(request("c", "cem"))
            for _ in range(200):
                if len(seen) == 2:
                    break
                await asyncio.sleep(0.01)
            # Two batches in flight; the third waits (still replaceable) for a free slot.
            assert queue.stats().running == 2 and c.state == "queued"
            assert queue.position(c) == 1
            gate.set()
            assert (await a.result()).job_id == "a"
            with pytest.raises(ValueError, match="bad b"):
                await b.result()
            assert (await c.result()).job_id == "c"
            stats = queue.stats()
            assert (stats.done, stats.failed, stats.batches) == (2, 1, 3)
            assert steps == [(1, 1)]
        finally:
            await queue.close()

    asyncio.run(main())
    assert seen == [["a"], ["b"], ["c"]]


def test_jobs_taken_for_a_forming_batch_can_be_cancelled_placed_and_closed() -> None:
    """Within a batch's window its jobs are taken but not started: /status, /cancel and
    close() still find them."""

    async def main() -> None:
        queue = LocalRenderQueue(StubRenderer(), max_batch=4, batch_window_s=30)
        a = await queue.submit(request("a", "ann"))
        b = await queue.submit(request("b", "bob"))
        for _ in range(100):
            if queue._forming:
                break
            await asyncio.sleep(0.01)
        assert (queue.position(a), queue.position(b), queue.stats().queued) == (1, 2, 2)
        assert queue.cancel(a) and a.state == "cancelled"
        await queue.close()
        with pytest.raises(JobCancelledError):
            await b.result()

    asyncio.run(main())

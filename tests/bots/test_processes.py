"""Several bot processes on one database and one files dir, on SQLite and PostgreSQL.

Each "process" is what a bot process has of its own: an Engine, a render queue, a Store
and a ConversationCore (the tiny backend, the rule planner). Updates are delivered to
either one, as a load balancer or a webhook retry would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatface.bots.conversation import ConversationCore, Delivery
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.queue import LocalRenderQueue
from chatface.storage import Job, Store

PHOTO = (Path(__file__).resolve().parents[1] / "data" / "faces" / "grace_hopper.jpg").read_bytes()
Body = Callable[[list[ConversationCore]], Awaitable[Any]]


class Processes:
    """``run(body)``: ``body(cores)`` with two bot processes' cores on one event loop.
    The first process's renders wait while ``gate`` is cleared."""

    def __init__(self, config: Any, pm: Any) -> None:
        self.config, self.pm = config, pm
        self.stores = [Store.from_config(config) for _ in range(2)]
        self.gate = threading.Event()
        self.gate.set()

    def run(self, body: Body) -> Any:
        async def main() -> Any:
            engines = [Engine(self.config, self.pm) for _ in self.stores]

            def gated(requests, progress):  # type: ignore[no-untyped-def]
                progress(0, 1)
                assert self.gate.wait(60), "the test never opened the gate"
                return engines[0].render_batch(requests, progress)

            queues = [LocalRenderQueue.from_engine(engines[0], gated),
                      LocalRenderQueue.from_engine(engines[1])]  # fmt: skip
            cores = [
                ConversationCore(engine, store, queue, "telegram", "tiny")
                for engine, store, queue in zip(engines, self.stores, queues, strict=True)
            ]
            try:
                return await body(cores)
            finally:
                self.gate.set()
                for queue in queues:
                    await queue.close()

        return asyncio.run(asyncio.wait_for(main(), 120))


@pytest.fixture
def processes(database_url: str, pm, monkeypatch) -> Iterator[Processes]:  # type: ignore[no-untyped-def]
    for name, value in {
        "CHATFACE_STORAGE_URL": database_url,
        "CHATFACE_ENGINE_BACKEND": "tiny",
        "CHATFACE_RENDER_ENCODE_STEPS": "1",
        "CHATFACE_RENDER_STEPS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    opened = Processes(load_config(), pm)
    try:
        yield opened
    finally:
        for store in opened.stores:
            store.close()


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never came true")


def rendered(cores: list[ConversationCore]) -> int:
    return sum(core.queue.stats().rendered for core in cores)


def test_an_update_delivered_to_both_processes_runs_once(processes: Processes) -> None:
    async def body(cores: list[ConversationCore]) -> None:
        photos = await asyncio.gather(
            *(core.receive_photo("u1", "c", PHOTO, "me.jpg", update_id="1") for core in cores)
        )
        assert sorted(reply.empty for reply in photos) == [False, True]
        assert "Got the face" in next(r for r in photos if not r.empty).text

        edits = await asyncio.gather(
            *(core.receive_text("u1", "c", "make her smile", update_id="2") for core in cores)
        )
        assert sorted(reply.empty for reply in edits) == [False, True]  # one is SILENT
        assert next(r for r in edits if not r.empty).image is not None
        assert rendered(cores) == 1
        store = cores[0].store
        (conversation,) = store.conversations(store.find_user("telegram", "u1").id)
        assert [m.text for m in store.messages(conversation.id)].count("make her smile") == 1

    processes.run(body)


def test_users_spread_over_both_processes_are_all_answered(processes: Processes) -> None:
    users = [f"u{i}" for i in range(4)]

    async def chat(cores: list[ConversationCore], i: int, user: str) -> list[Any]:
        # Each message lands on the process the load balancer picks: they alternate.
        here, there = cores[i % 2], cores[(i + 1) % 2]
        got = [await here.receive_photo(user, "c", PHOTO, "me.jpg", update_id=f"{user}-1")]
        got.append(await there.receive_text(user, "c", "make her smile", update_id=f"{user}-2"))
        got.append(await here.receive_text(user, "c", "undo", update_id=f"{user}-3"))
        return got

    async def body(cores: list[ConversationCore]) -> None:
        answers = await asyncio.gather(*(chat(cores, i, u) for i, u in enumerate(users)))
        for photo, smile, undone in answers:
            assert "Got the face" in photo.text
            assert smile.image is not None and not smile.error
            assert undone.image is not None and undone.image != smile.image
        assert rendered(cores) == len(users)
        assert all(core.queue.stats().rendered > 0 for core in cores)  # both did work

    processes.run(body)


def test_jobs_left_unfinished_are_recovered_once_by_processes_starting_at_once(
    processes: Processes,
) -> None:
    users = [f"u{i}" for i in range(6)]

    async def left(cores: list[ConversationCore]) -> None:
        """A process that died with photo jobs left: their rows and their photos."""
        store = cores[0].store
        for user in users:
            path = store.files_dir / "incoming" / f"{user}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(PHOTO)
            job = Job(kind="photo", photo_path=f"incoming/{user}.bin", owner="a-dead-process")
            store.write_turn("telegram", user, "c", messages=[("user", "[photo]")], job=job)

    async def start_both(cores: list[ConversationCore]) -> list[list[Delivery]]:
        delivered: list[list[Delivery]] = [[], []]

        def deliver(i: int) -> Callable[[Delivery], Awaitable[None]]:
            async def send(delivery: Delivery) -> None:
                delivered[i].append(delivery)

            return send

        await asyncio.gather(*(core.recover(deliver(i)) for i, core in enumerate(cores)))
        return delivered

    processes.run(left)
    delivered = processes.run(start_both)
    answered = sorted(d.user for each in delivered for d in each)
    assert answered == users  # each job answered once, by one of the two
    assert all("Got the face" in d.reply.text for each in delivered for d in each)
    assert processes.stores[0].unfinished_jobs("telegram") == []


def test_a_job_claimed_from_a_live_process_is_answered_once(processes: Processes) -> None:
    """A process that starts while another one still renders claims that job too (it
    cannot tell a live owner from a dead one): both render it, only one answers."""

    async def body(cores: list[ConversationCore]) -> None:
        live, starting = cores
        await live.receive_photo("u1", "c", PHOTO, "me.jpg", update_id="1")
        delivered: list[Delivery] = []

        async def deliver(delivery: Delivery) -> None:
            delivered.append(delivery)

        processes.gate.clear()
        smile = asyncio.create_task(live.receive_text("u1", "c", "make her smile", None, "2"))
        await until(lambda: live.queue.stats().running == 1)
        assert await starting.recover(deliver) == 1
        (recovered,) = delivered
        assert recovered.reply.image is not None
        processes.gate.set()
        assert (await smile).empty  # the live process's render was claimed away: silent
        assert rendered(cores) == 2
        assert live.store.unfinished_jobs("telegram") == []

    processes.run(body)

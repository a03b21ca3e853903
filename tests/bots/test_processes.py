"""Several bot processes on one database and one files dir, on SQLite and PostgreSQL.

Each "process" is what a bot process has of its own: an Engine, a render queue, a Store
and a ConversationCore (the tiny backend, the rule planner). Updates are delivered to
either one, as a load balancer or a webhook retry would.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatface.bots.conversation import ConversationCore, Delivery
from chatface.bots.runs import Run
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.queue import LocalRenderQueue
from chatface.errors import StorageError
from chatface.storage import Job, Store
from tests.bots.test_conversation import until

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
                for queue, core in zip(queues, cores, strict=True):
                    await queue.close()
                    core.close()

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
        """A process that died with photo jobs left (no lock file: older data)."""
        for user in users:
            left_photo(cores[0].store, user, "a-dead-process")

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


def test_a_job_of_a_live_process_is_left_to_it(processes: Processes) -> None:
    """A process that starts while another one still renders leaves that job alone: it
    is rendered once, and the process rendering it answers."""

    async def body(cores: list[ConversationCore]) -> None:
        live, starting = cores
        await live.receive_photo("u1", "c", PHOTO, "me.jpg", update_id="1")
        delivered: list[Delivery] = []

        async def deliver(delivery: Delivery) -> None:
            delivered.append(delivery)

        processes.gate.clear()
        smile = asyncio.create_task(live.receive_text("u1", "c", "make her smile", None, "2"))
        await until(lambda: live.queue.stats().running == 1)
        assert await starting.recover(deliver) == 0
        processes.gate.set()
        assert (await smile).image is not None
        assert delivered == []
        assert rendered(cores) == 1
        assert live.store.unfinished_jobs("telegram") == []

    processes.run(body)


def test_a_job_of_a_process_killed_with_9_is_recovered_at_once(processes: Processes) -> None:
    """A process killed (-9) leaves its lock file unlocked: the next process to start does
    its job at once (and deletes the file), while it leaves a live process's job alone."""
    dead = killed_run(processes.config.data_dir)
    lock_file = processes.config.data_dir / "runs" / f"{dead}.lock"
    assert lock_file.is_file()

    async def body(cores: list[ConversationCore]) -> None:
        live, starting = cores
        for user, owner in (("u1", dead), ("u2", live.jobs.run_id)):
            left_photo(live.store, user, owner)
        delivered: list[Delivery] = []

        async def deliver(delivery: Delivery) -> None:
            delivered.append(delivery)

        assert await starting.recover(deliver) == 1
        (recovered,) = delivered
        assert recovered.user == "u1" and "Got the face" in recovered.reply.text
        [(job, _, user, _)] = live.store.unfinished_jobs("telegram")
        assert (user, job.owner) == ("u2", live.jobs.run_id)

    processes.run(body)
    assert not lock_file.exists()


def test_a_run_is_alive_until_it_closes_or_its_process_dies(tmp_path: Path) -> None:
    dead = killed_run(tmp_path)
    assert (tmp_path / "runs" / f"{dead}.lock").is_file()
    first, second = Run(tmp_path), Run(tmp_path)
    (tmp_path / "runs" / "a-stray-file.txt").write_text("")  # not a run's: ignored
    assert first.others_alive() == {second.id}  # and the dead run's file is deleted
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(
        ["a-stray-file.txt", f"{first.id}.lock", f"{second.id}.lock"]
    )
    second.close()
    assert first.others_alive() == set()
    assert not (tmp_path / "runs" / f"{second.id}.lock").exists()
    assert Run(tmp_path).others_alive() == {first.id}
    first.close()


def test_a_data_dir_without_file_locks_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", refuse)
    with pytest.raises(StorageError, match="need file locks in the data directory"):
        Run(tmp_path)
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_lock_file_that_cannot_be_checked_counts_as_alive(
    processes: Processes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Over NFS an exclusive flock needs a file open for writing (EBADF otherwise); a run
    whose file cannot be checked at all is taken for alive: its job is left, once warned
    about, and recovery goes on with the others."""
    dead = killed_run(processes.config.data_dir)
    unknown = processes.config.data_dir / "runs" / "unknown.lock"
    unknown.write_text("")  # unlocked: with working locks its run would count as stopped
    real_flock = fcntl.flock

    def nfs_flock(fd: int, operation: int) -> None:
        read_only = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        if operation & fcntl.LOCK_EX and (
            read_only or os.fstat(fd).st_ino == unknown.stat().st_ino
        ):
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", nfs_flock)

    async def body(cores: list[ConversationCore]) -> None:
        live, starting = cores
        for user, owner in (("u1", dead), ("u2", "unknown")):
            left_photo(live.store, user, owner)
        delivered: list[Delivery] = []

        async def deliver(delivery: Delivery) -> None:
            delivered.append(delivery)

        assert await starting.recover(deliver) == 1
        assert await starting.recover(deliver) == 0
        (recovered,) = delivered
        assert recovered.user == "u1" and "Got the face" in recovered.reply.text
        [(job, _, user, _)] = live.store.unfinished_jobs("telegram")
        assert (user, job.owner) == ("u2", "unknown")

    with caplog.at_level("WARNING", logger="chatface.bots.runs"):
        processes.run(body)
    warnings = [r for r in caplog.records if r.name == "chatface.bots.runs"]
    assert [str(unknown) in r.getMessage() and not r.exc_info for r in warnings] == [True]
    assert unknown.exists()


KILLED = """
import sys
from pathlib import Path
from chatface.bots.runs import Run

print(Run(Path(sys.argv[1])).id, flush=True)
sys.stdin.read()
"""


def killed_run(data_dir: Path) -> str:
    """The id of a run whose process was killed (-9) while it held its lock."""
    with subprocess.Popen(
        [sys.executable, "-c", KILLED, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        run_id = process.stdout.readline().strip()
        # Alive, it holds the lock: another run sees it.
        watcher = Run(data_dir)
        assert run_id in watcher.others_alive()
        watcher.close()
        process.kill()
    assert process.returncode == -signal.SIGKILL
    return run_id


def left_photo(store: Store, user: str, owner: str) -> None:
    """A photo job ``owner`` had not done: its row and its photo."""
    path = store.files_dir / "incoming" / f"{user}.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PHOTO)
    job = Job(kind="photo", photo_path=f"incoming/{user}.bin", owner=owner)
    store.write_turn("telegram", user, "c", messages=[("user", "[photo]")], job=job)

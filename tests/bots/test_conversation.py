"""The platform-neutral async dialogue, with the tiny backend and a scripted planner.

Each test runs its turns on one event loop with a real LocalRenderQueue, as a bot does.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chatface import hookimpl
from chatface.bots.conversation import NO_FACE, TOO_FAST, ConversationCore, Delivery
from chatface.bots.replies import FAILED
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.queue import LocalRenderQueue
from chatface.engine.types import EditOp, EditPlan
from chatface.storage import Job, Store

PHOTO = Path(__file__).resolve().parents[1] / "data" / "faces" / "grace_hopper.jpg"
SCRIPT = {
    "smile please": EditPlan("edit", (EditOp("smile", 0.5),), reply="Adding a smile."),
    "more": EditPlan("edit", (EditOp("smile", 0.5),), reply="More smile."),
    "less": EditPlan("edit", (EditOp("smile", -0.5),), reply="Less smile."),
    "quick smile": EditPlan("edit", (EditOp("smile", 0.5),), steps=2, reply="Quickly."),
    "undo": EditPlan("undo"),
    "redo": EditPlan("redo"),
    "start over": EditPlan("reset"),
    "original?": EditPlan("show_original"),
    "help": EditPlan("help"),
    "attributes": EditPlan("list_attributes"),
    "quick": EditPlan("edit", (EditOp("age", 0.5),), steps=2, reply="Older, quickly."),
    "smile, constant": EditPlan("edit", (EditOp("smile", 0.5),), schedule="constant"),
}


class Scripted:
    def __init__(self, config: object) -> None:
        pass

    def plan(self, message, context):  # type: ignore[no-untyped-def]
        if message == "slow smile":
            time.sleep(0.5)
            return SCRIPT["smile please"]
        return SCRIPT.get(message, EditPlan("chat", reply=f"state={dict(context.state.strengths)}"))


class Plugin:
    @hookimpl
    def chatface_register_planners(self, register):  # type: ignore[no-untyped-def]
        register("scripted", Scripted)


@pytest.fixture
def setup(pm, add_plugin, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CHATFACE_PLANNER_NAME", "scripted")
    monkeypatch.setenv("CHATFACE_RENDER_ENCODE_STEPS", "4")
    monkeypatch.setenv("CHATFACE_RENDER_STEPS", "3")
    add_plugin(Plugin(), "scripted-plugin")
    config = load_config()
    engine = Engine(config, pm)
    store = Store.from_config(config)
    try:
        yield engine, store
    finally:
        store.close()


def same(a, b) -> bool:  # type: ignore[no-untyped-def]
    from PIL import Image

    return np.array_equal(*(np.asarray(Image.open(io.BytesIO(x))) for x in (a, b)))


def size(image: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(image)).size


def run(engine, store, platform: str, body: Callable[[ConversationCore], Awaitable[Any]]):  # type: ignore[no-untyped-def]
    """``body(core)`` on a fresh event loop and render queue: one bot process."""

    async def main() -> Any:
        queue = LocalRenderQueue.from_engine(engine)
        core = ConversationCore(engine, store, queue, platform, backend="tiny")
        try:
            return await body(core)
        finally:
            await queue.close()
            core.close()

    return asyncio.run(main())


def test_a_whole_session(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore) -> None:
        async def say(text: str):  # type: ignore[no-untyped-def]
            return await chat.receive_text("u1", "c1", text)

        assert (await say("smile please")).text == "Send me a photo with a face first."
        reply = await chat.receive_photo("u1", "c1", PHOTO.read_bytes(), "grace.jpg")
        assert reply.text == "Got the face. What should I change?" and reply.image is None
        original = (await say("original?")).image
        assert original is not None and size(original) == (384, 384)  # the photo as it came

        smile = await say("smile please")
        assert smile.text == "Adding a smile." and smile.image_type == "image/png"
        assert not same(smile.image, original)
        more = await say("more")
        assert (await say("what state?")).text == "state={'smile': 1.0}"

        undone = await say("undo")
        assert same(undone.image, smile.image)  # exact: the stored image
        assert same((await say("undo")).image, original)
        assert (await say("undo")).text == "Nothing to undo."
        assert same((await say("redo")).image, smile.image)
        assert same((await say("redo")).image, more.image)
        assert (await say("redo")).text == "Nothing to redo."
        assert same((await say("start over")).image, original)
        assert same((await say("undo")).image, more.image)  # reset is undoable

        assert "undo" in (await say("help")).text
        assert "smile" in (await say("attributes")).text

    run(engine, store, "telegram", session)
    conversation = store.conversations(store.find_user("telegram", "u1").id)[0]
    face = store.active_face(conversation.id)
    history = store.history(face.id)
    assert [e.seq for e in history] == [1, 2, 3] and face.cursor == 2
    assert all((store.files_dir / e.result_path).is_file() for e in history[:2])
    log = store.messages(conversation.id, 100)
    assert [m.role for m in log[:2]] == ["user", "bot"]


def test_after_a_restart_renders_come_from_storage(setup) -> None:
    engine, store = setup

    async def first(chat: ConversationCore) -> tuple[bytes, bytes]:
        await chat.receive_photo("u2", "c", PHOTO.read_bytes())
        quick = await chat.receive_text("u2", "c", "quick")  # rendered with 2 steps, once
        smile = await chat.receive_text("u2", "c", "smile please")
        return quick.image, smile.image

    quick, smile = run(engine, store, "discord", first)
    for result in (store.files_dir / "users").rglob("face-*-edit-2.png"):
        result.unlink()  # the smile must now be rendered again, from storage alone

    async def again(chat: ConversationCore) -> None:  # a new process: no cache
        assert same((await chat.receive_text("u2", "c", "undo")).image, quick)  # stored
        assert same((await chat.receive_text("u2", "c", "redo")).image, smile)  # re-rendered

    run(engine, store, "discord", again)


def test_bad_photos_and_users_are_kept_apart(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore) -> None:
        bad = await chat.receive_photo("u3", "c", b"hello there")
        assert bad.error and "not an image" in bad.text.lower()
        await chat.receive_photo("u4", "c", PHOTO.read_bytes())
        await chat.receive_text("u4", "c", "smile please")
        lonely = await chat.receive_text("u3", "c", "smile please")
        assert lonely.text == "Send me a photo with a face first."

    run(engine, store, "telegram", session)
    store.forget_user("telegram", "u4")
    assert not (store.files_dir / "users").exists() or not any(
        p.name.startswith("face-") for p in (store.files_dir / "users").rglob("*")
    )


def test_a_face_that_cannot_be_stored_fails_its_job(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    engine, store = setup

    async def broken(backend: str) -> str:
        raise RuntimeError("the weights went missing")

    async def session(chat: ConversationCore) -> None:
        chat.queue.weights_of = broken  # type: ignore[method-assign]
        reply = await chat.receive_photo("u5", "c", PHOTO.read_bytes())
        assert reply.error and reply.text == FAILED

    run(engine, store, "telegram", session)
    assert store.unfinished_jobs("telegram") == []  # failed, not left for the next start
    [conversation] = store.conversations(store.find_user("telegram", "u5").id)  # type: ignore[union-attr]
    assert store.messages(conversation.id)[-1].text == FAILED
    assert "the weights went missing" in caplog.text
    assert not any((store.files_dir / "incoming").iterdir())


def test_two_users_at_once_and_the_loop_stays_free(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore, gate: threading.Event) -> None:
        for user in ("a", "b", "c"):
            await chat.receive_photo(user, "c", PHOTO.read_bytes())
        first = asyncio.create_task(chat.receive_text("a", "c", "smile please"))
        await until(lambda: chat.queue.stats().running == 1)
        # The model thread is busy (the gate is shut): the loop still answers others...
        assert "/undo" in (await chat.receive_text("c", "c", "help")).text
        # ...and two users' edits queued meanwhile go into one batch, fair and together.
        both = asyncio.gather(
            chat.receive_text("b", "c", "smile please"), chat.receive_text("c", "c", "more")
        )
        await until(lambda: chat.queue.stats().queued == 2)
        gate.set()
        assert (await first).image is not None
        assert all(r.image is not None for r in await both)
        stats = chat.queue.stats()
        assert (stats.done, stats.batches, stats.rendered) == (3, 2, 3)

    run_gated(engine, store, "telegram", session)


def test_a_newer_message_replaces_a_waiting_render(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore, gate: threading.Event) -> None:
        for name in ("u5", "other"):
            await chat.receive_photo(name, "c", PHOTO.read_bytes())
        await chat.receive_photo("u5", "elsewhere", PHOTO.read_bytes())
        busy = asyncio.create_task(chat.receive_text("other", "c", "smile please"))
        await until(lambda: chat.queue.stats().running == 1)  # the model is busy
        first = asyncio.create_task(chat.receive_text("u5", "c", "smile please"))
        away = asyncio.create_task(chat.receive_text("u5", "elsewhere", "smile please"))
        await until(lambda: chat.queue.stats().queued == 2)
        second = asyncio.create_task(chat.receive_text("u5", "c", "more"))
        assert (await first).empty  # replaced: the newer message answers
        gate.set()
        assert (await second).image is not None
        assert (await away).image is not None  # another chat of the same user is not replaced
        assert (await busy).image is not None
        assert chat.queue.stats().replaced == 1

    run_gated(engine, store, "telegram", session)
    states = [job.state for job in jobs_of(store, "telegram", "u5")]
    assert sorted(states) == ["cancelled", "done", "done", "done", "done"]


def jobs_of(store: Store, platform: str, user: str) -> list[Job]:
    from sqlmodel import Session, select

    from chatface.storage import Conversation, User

    with Session(store.engine) as session:
        query = (
            select(Job)
            .join(Conversation, Job.conversation_id == Conversation.id)
            .join(User, Conversation.user_id == User.id)
            .where(User.platform == platform, User.platform_user_id == user)
        )
        return list(session.exec(query).all())


def test_a_render_overtaken_by_an_undo_is_not_sent(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore, gate: threading.Event) -> None:
        await chat.receive_photo("u15", "c", PHOTO.read_bytes())
        smile = asyncio.create_task(chat.receive_text("u15", "c", "smile please"))
        await until(lambda: chat.queue.stats().running == 1)
        undo = await chat.receive_text("u15", "c", "undo")
        assert undo.text == "Undone." and undo.image is not None  # the original, at once
        gate.set()
        assert (await smile).empty  # it would show a state that is no longer current
        redo = await chat.receive_text("u15", "c", "redo")  # the stored render: no new one
        assert redo.image is not None and chat.queue.stats().rendered == 1

    run_gated(engine, store, "telegram", session)


def test_forget_during_a_render_leaves_nothing_behind(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore, gate: threading.Event) -> None:
        await chat.receive_photo("u16", "c", PHOTO.read_bytes())
        smile = asyncio.create_task(chat.receive_text("u16", "c", "smile please"))
        await until(lambda: chat.queue.stats().running == 1)
        assert "deleted everything" in (await chat.command("u16", "c", "forget", "yes")).text
        gate.set()
        assert (await smile).empty

    run_gated(engine, store, "telegram", session)
    assert not (store.files_dir / "users").exists() or not any(
        (store.files_dir / "users").rglob("*.png")
    )


def test_recovery_leaves_this_runs_own_jobs_alone(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore, gate: threading.Event) -> None:
        await chat.receive_photo("u18", "c", PHOTO.read_bytes())
        smile = asyncio.create_task(chat.receive_text("u18", "c", "smile please"))
        await until(lambda: chat.queue.stats().running == 1)
        assert await collect(chat) == []  # the render in flight is not the last run's
        gate.set()
        assert (await smile).image is not None
        assert chat.queue.stats().rendered == 1

    run_gated(engine, store, "telegram", session)


def test_a_photo_cut_off_by_a_stop_is_encoded_after_the_restart(setup) -> None:
    engine, store = setup

    async def stop(chat: ConversationCore) -> None:
        started = threading.Event()
        real = engine.open_face

        def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
            started.set()
            time.sleep(0.5)
            return real(*args, **kwargs)

        engine.open_face = slow  # type: ignore[method-assign]
        try:
            photo = asyncio.create_task(chat.receive_photo("u17", "c", PHOTO.read_bytes()))
            await asyncio.to_thread(started.wait, 30)
            await chat.queue.close()  # the bot stops while the face is being read
            assert (await photo).empty
        finally:
            del engine.open_face

    run(engine, store, "telegram", stop)
    [(job, _, _, _)] = store.unfinished_jobs("telegram")
    assert (store.files_dir / job.photo_path).is_file()  # kept for the next start
    delivered = run(engine, store, "telegram", collect)
    assert "Got the face" in delivered[0].reply.text
    assert not any((store.files_dir / "incoming").iterdir())


def test_a_face_evicted_from_the_cache_is_read_again(setup, pm, monkeypatch) -> None:
    monkeypatch.setenv("CHATFACE_BOTS_FACE_CACHE", "1")
    _, store = setup
    engine = Engine(load_config(), pm)

    async def session(chat: ConversationCore) -> None:
        for name in ("a", "b"):  # the cache holds one face: b's
            await chat.receive_photo(name, "c", PHOTO.read_bytes())
        # b's turn reads its face without the blobs (cached), then plans slowly; a's turn
        # meanwhile brings a's face into the cache, which drops b's before b renders.
        slow, quick = await asyncio.gather(
            chat.receive_text("b", "c", "slow smile"), chat.receive_text("a", "c", "smile please")
        )
        assert slow.image is not None and quick.image is not None

    run(engine, store, "telegram", session)


async def collect(chat: ConversationCore) -> list[Delivery]:
    delivered: list[Delivery] = []

    async def deliver(delivery: Delivery) -> None:
        delivered.append(delivery)

    await chat.recover(deliver)
    return delivered


def run_gated(engine, store, platform: str, body):  # type: ignore[no-untyped-def]
    """Like ``run``, but each render batch waits until the test opens ``gate``."""
    gate = threading.Event()

    def render_batch(requests, progress):  # type: ignore[no-untyped-def]
        progress(0, 1)
        assert gate.wait(30), "the test never opened the gate"
        return engine.render_batch(requests, progress)

    async def main() -> Any:
        queue = LocalRenderQueue(render_batch, batch_window_s=0, engine=engine)
        core = ConversationCore(engine, store, queue, platform, "tiny")
        try:
            return await body(core, gate)
        finally:
            gate.set()
            await queue.close()
            core.close()

    return asyncio.run(main())


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never came true")


def test_commands(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore) -> None:
        async def command(name: str, arg: str = ""):  # type: ignore[no-untyped-def]
            return await chat.command("u6", "c", name, arg)

        assert "photo" in (await command("start")).text
        assert "/undo" in (await command("help")).text
        assert "smile" in (await command("attributes")).text
        assert (await command("history")).text == "Send me a photo with a face first."
        unknown = await command("teleport")
        assert unknown.error and "/forget" in unknown.text
        await chat.receive_photo("u6", "c", PHOTO.read_bytes())
        await chat.receive_text("u6", "c", "smile please")
        await chat.receive_text("u6", "c", "quick")
        assert (await command("undo")).image is not None
        history = (await command("history")).text.splitlines()
        assert history == ["0. the original photo", "1. smile +0.50  <- now", "2. age +0.50"]
        assert (await command("original")).image is not None
        assert "Nothing of yours" in (await command("status")).text
        assert "Nothing of yours" in (await command("cancel")).text
        assert (await command("undo")).text == "Undone."
        assert (await command("undo")).text == "Nothing to undo."

    run(engine, store, "telegram", session)


def test_a_redelivered_update_runs_once(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore) -> None:
        photo = await chat.receive_photo("u7", "c", PHOTO.read_bytes(), update_id="1")
        assert "Got the face" in photo.text
        assert (await chat.receive_photo("u7", "c", PHOTO.read_bytes(), update_id="1")).empty
        first = await chat.receive_text("u7", "c", "smile please", update_id="2")
        again = await chat.receive_text("u7", "c", "smile please", update_id="2")
        assert first.image is not None and again.empty
        assert (await chat.command("u7", "c", "undo", update_id="3")).text == "Undone."
        assert (await chat.command("u7", "c", "undo", update_id="3")).empty

    run(engine, store, "telegram", session)
    user = store.find_user("telegram", "u7")
    [conversation] = store.conversations(user.id)
    assert len(store.faces(conversation.id)) == 1
    assert len(store.history(store.active_face(conversation.id).id)) == 1


def test_empty_long_and_flooding_messages_get_polite_replies(setup, pm, monkeypatch) -> None:
    monkeypatch.setenv("CHATFACE_BOTS_RATE_LIMIT_PER_MINUTE", "5")
    _, store = setup
    engine = Engine(load_config(), pm)

    async def session(chat: ConversationCore) -> None:
        empty = await chat.receive_text("u8", "c", "   ")
        assert empty.error and "Say what to change" in empty.text
        long = await chat.receive_text("u8", "c", "x" * 10_000)
        assert long.error and "too long (10,000 characters)" in long.text
        flood = await asyncio.gather(*(chat.receive_text("u8", "c", "help") for _ in range(50)))
        assert sum("/undo" in r.text for r in flood) == 3  # 5 per minute, 2 used above
        assert [r.text for r in flood if r.error] == [TOO_FAST]  # warned once
        assert sum(r.empty for r in flood) == 46
        assert "/undo" in (await chat.receive_text("u9", "c", "help")).text  # others go on

    run(engine, store, "discord", session)


def test_forget_asks_first(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore) -> None:
        await chat.receive_photo("u10", "c", PHOTO.read_bytes())
        await chat.receive_text("u10", "c", "smile please")
        ask = await chat.command("u10", "c", "forget")
        assert ask.confirm == "forget" and "Are you sure" in ask.text
        assert (await chat.command("u10", "c", "forget", "no")).text == "Nothing was deleted."
        assert store.find_user("discord", "u10") is not None
        done = await chat.command("u10", "c", "forget", "yes")
        assert "1 face(s), 1 edit(s)" in done.text
        assert store.find_user("discord", "u10") is None
        assert (await chat.receive_text("u10", "c", "smile please")).text == NO_FACE

    run(engine, store, "discord", session)
    assert not any((store.files_dir / "users").rglob("*.png"))
    assert not any((store.files_dir / "incoming").iterdir())


def test_status_and_cancel_while_waiting(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore, gate: threading.Event) -> None:
        for user in ("a", "b"):
            await chat.receive_photo(user, "c", PHOTO.read_bytes())
        first = asyncio.create_task(chat.receive_text("a", "c", "smile please"))
        await until(lambda: chat.queue.stats().running == 1)
        second = asyncio.create_task(chat.receive_text("b", "c", "smile please"))
        await until(lambda: chat.queue.stats().queued == 1)
        assert "rendering now" in (await chat.command("a", "c", "status")).text
        assert "number 1 in the queue" in (await chat.command("b", "c", "status")).text
        assert "Cancelled" in (await chat.command("b", "c", "cancel")).text
        assert (await second).empty  # /cancel answered
        gate.set()
        assert (await first).image is not None
        face = store.active_face(store.conversations(store.find_user("telegram", "b").id)[0].id)
        assert face.cursor == 0  # the cancelled edit was taken back
        assert "Nothing of yours" in (await chat.command("b", "c", "status")).text

    run_gated(engine, store, "telegram", session)


def test_jobs_left_by_a_stopped_bot_are_finished_after_the_restart(setup) -> None:
    engine, store = setup

    async def crash(chat: ConversationCore, gate: threading.Event) -> None:
        await chat.receive_photo("u11", "c", PHOTO.read_bytes())
        render = asyncio.create_task(chat.receive_text("u11", "c", "smile please"))
        await until(lambda: chat.queue.stats().running == 1)
        await chat.queue.close()  # the bot stops mid-render
        assert (await render).empty
        # and a photo arrived but was never encoded (killed before the model ran)
        photo = PHOTO.read_bytes()
        path = store.files_dir / "incoming" / "lost.bin"
        path.write_bytes(photo)
        store.write_turn(
            "telegram", "u12", "c", job=Job(kind="photo", photo_path="incoming/lost.bin")
        )

    run_gated(engine, store, "telegram", crash)
    assert len(store.unfinished_jobs("telegram")) == 2

    deliveries = run(engine, store, "telegram", collect)
    by_user = {d.user: d for d in deliveries}
    assert by_user["u11"].chat == "c" and by_user["u11"].reply.image is not None
    assert "Got the face" in by_user["u12"].reply.text
    assert store.unfinished_jobs("telegram") == []
    assert run(engine, store, "telegram", collect) == []  # nothing owed twice
    face = store.active_face(store.conversations(store.find_user("telegram", "u11").id)[0].id)
    assert store.current_edit(face.id).result_path  # the result was stored


def test_a_text_right_after_a_photo_waits_for_its_face(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore) -> None:
        photo, text = await asyncio.gather(
            chat.receive_photo("u13", "c", PHOTO.read_bytes()),
            chat.receive_text("u13", "c", "smile please"),
        )
        assert "Got the face" in photo.text and text.image is not None

    run(engine, store, "telegram", session)


def test_current_is_the_latest_result_at_full_size(setup) -> None:
    engine, store = setup

    async def first(chat: ConversationCore) -> bytes:
        assert (await chat.current("u14", "c")).text == NO_FACE
        await chat.receive_photo("u14", "c", PHOTO.read_bytes())
        assert size((await chat.current("u14", "c")).image) == size(PHOTO.read_bytes())
        return (await chat.receive_text("u14", "c", "smile please")).image

    smile = run(engine, store, "telegram", first)

    async def restarted(chat: ConversationCore) -> None:
        assert same((await chat.current("u14", "c")).image, smile)

    run(engine, store, "telegram", restarted)


def test_the_flood_limit_forgets_quiet_people(monkeypatch) -> None:
    from chatface.bots import replies

    monkeypatch.setattr(replies, "SWEEP_AT", 3)
    clock = [0.0]
    monkeypatch.setattr(replies.time, "monotonic", lambda: clock[0])
    limit = replies.RateLimit(1)
    for user in "abcd":
        assert limit.check(user) is None
    assert limit.check("a") is not None and limit.check("a").empty  # warned once, then silent
    clock[0] = 61.0
    assert limit.check("e") is None
    assert set(limit._seen) == {"e"}  # the others were quiet for a minute


def test_a_plan_can_ask_for_a_schedule(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore) -> tuple[bytes, bytes]:
        for user in ("s1", "s2"):
            await chat.receive_photo(user, "c", PHOTO.read_bytes())
        stable = await chat.receive_text("s1", "c", "smile please")  # render.schedule: stable
        constant = await chat.receive_text("s2", "c", "smile, constant")
        return stable.image, constant.image

    stable, constant = run(engine, store, "telegram", session)
    assert not same(stable, constant)  # the same state, rendered another way
    [job] = [j for j in jobs_of(store, "telegram", "s2") if j.kind == "render"]
    assert job.schedule == "constant"  # kept for a render after a restart

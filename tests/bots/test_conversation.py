"""The platform-neutral async dialogue, with the tiny backend and a scripted planner.

Each test runs its turns on one event loop with a real LocalRenderQueue, as a bot does.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chatface import hookimpl
from chatface.bots.conversation import ConversationCore
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.queue import LocalRenderQueue
from chatface.engine.types import EditOp, EditPlan
from chatface.storage import Store

PHOTO = Path(__file__).resolve().parents[1] / "data" / "faces" / "grace_hopper.jpg"
SCRIPT = {
    "smile please": EditPlan("edit", (EditOp("smile", 0.5),), reply="Adding a smile."),
    "more": EditPlan("edit", (EditOp("smile", 0.5),), reply="More smile."),
    "undo": EditPlan("undo"),
    "redo": EditPlan("redo"),
    "start over": EditPlan("reset"),
    "original?": EditPlan("show_original"),
    "help": EditPlan("help"),
    "attributes": EditPlan("list_attributes"),
    "quick": EditPlan("edit", (EditOp("age", 0.5),), steps=2, reply="Older, quickly."),
}


class Scripted:
    def __init__(self, config: object) -> None:
        pass

    def plan(self, message, context):  # type: ignore[no-untyped-def]
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
        try:
            return await body(ConversationCore(engine, store, queue, platform, backend="tiny"))
        finally:
            await queue.close()

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


def test_two_users_at_once_and_the_loop_stays_free(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore) -> None:
        for user in ("a", "b"):
            await chat.receive_photo(user, "c", PHOTO.read_bytes())
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        replies = await asyncio.gather(
            chat.receive_text("a", "c", "smile please"), chat.receive_text("b", "c", "quick")
        )
        beat.cancel()
        assert all(r.image is not None for r in replies)
        assert ticks > 5  # the event loop kept running while the model rendered
        stats = chat.queue.stats()
        assert stats.done == 2

    run(engine, store, "telegram", session)


def test_a_newer_message_replaces_a_waiting_render(setup) -> None:
    engine, store = setup

    async def session(chat: ConversationCore) -> None:
        await chat.receive_photo("u5", "c", PHOTO.read_bytes())
        first, second = await asyncio.gather(
            chat.receive_text("u5", "c", "smile please"), chat.receive_text("u5", "c", "more")
        )
        # Whichever was still waiting when the other arrived is replaced, never both.
        assert [first.empty, second.empty].count(True) <= 1
        assert second.image is not None

    run(engine, store, "telegram", session)

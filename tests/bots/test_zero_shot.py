"""Zero-shot free-text attributes end to end, on the tiny backend, identity net and CLIP:
offer -> yes -> learning -> the edit renders, undo is exact, another face starts from
the cached offset."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from chatface.bots.conversation import ConversationCore
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.queue import LocalRenderQueue
from chatface.plugins.mapper import zero_shot_learn
from chatface.storage import Store

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


@pytest.fixture
def engine(pm, monkeypatch):  # type: ignore[no-untyped-def]
    for name, value in {
        "ENGINE_BACKEND": "tiny", "IDENTITY_MODEL": "tiny", "RENDER_ENCODE_STEPS": "2",
        "RENDER_STEPS": "2", "ZERO_SHOT_ENABLED": "on", "ZERO_SHOT_STEPS": "3",
        "ZERO_SHOT_RENDER_STEPS": "1", "METHOD_CLIP_MODEL": "tiny",
    }.items():  # fmt: skip
        monkeypatch.setenv(f"CHATFACE_{name}", value)
    return Engine(load_config(), pm)


def chatting(engine: Engine, store: Store, session) -> None:  # type: ignore[no-untyped-def]
    """Run ``session(chat)`` on a conversation core over a local queue; close both after."""

    async def run() -> None:
        queue = LocalRenderQueue.from_engine(engine)
        core = ConversationCore(engine, store, queue, "cli", backend="tiny")
        try:
            await session(core)
        finally:
            await queue.close()
            core.close()
            store.close()

    asyncio.run(run())


def same(a: bytes | None, b: bytes | None) -> bool:
    from PIL import Image

    assert a is not None and b is not None
    return np.array_equal(*(np.asarray(Image.open(io.BytesIO(x))) for x in (a, b)))


def test_offer_yes_learn_render_undo_and_a_second_face(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    starts: list[torch.Tensor | None] = []
    learn = zero_shot_learn.learn_offset

    def spy(engine, latents, backend, target, start=None, progress=None, **kwargs):  # type: ignore[no-untyped-def]
        starts.append(start)
        return learn(engine, latents, backend, target, start, progress, **kwargs)

    monkeypatch.setattr(zero_shot_learn, "learn_offset", spy)
    store = Store.from_config(engine.config)

    async def session(chat: ConversationCore) -> None:
        await chat.receive_photo("u", "c", (FACES / "grace_hopper.jpg").read_bytes())
        original = (await chat.receive_text("u", "c", "show the original")).image
        offer = await chat.receive_text("u", "c", "make her look a lot like a vampire")
        assert offer.image is None
        assert offer.text.startswith("I don't know 'looking like a vampire' yet: ")
        assert offer.text.endswith(" s. Say yes to try.")
        starts.clear()  # the probe that measured the time
        threads: list[int] = []  # bots' progress touches the event loop: only from it
        report = lambda done, total: threads.append(threading.get_ident())  # noqa: E731
        edited = await chat.receive_text("u", "c", "yes", progress=report)
        assert threads and set(threads) == {threading.get_ident()}
        assert edited.text == "Here you are, looking like a vampire."
        assert edited.plan is not None and edited.plan.edits[0].attribute == "vampire"
        assert edited.plan.edits[0].strength == pytest.approx(0.8)  # "a lot"
        assert not same(edited.image, original) and starts == [None]
        assert "vampire" in (await chat.receive_text("u", "c", "list attributes")).text
        assert same((await chat.receive_text("u", "c", "undo")).image, original)
        assert same((await chat.receive_text("u", "c", "redo")).image, edited.image)

        # Another face: the learned text is known, but not for this face yet.
        await chat.receive_photo("u", "c", (FACES / "obama.jpg").read_bytes())
        again = await chat.receive_text("u", "c", "make him look like a vampire")
        assert again.text.startswith("I learned 'looking like a vampire' on another photo")
        second = await chat.receive_text("u", "c", "ok")
        assert second.image is not None and len(starts) == 2
        assert starts[1] is not None  # started from the first face's offset
        assert (await chat.receive_text("u", "c", "more vampire")).image is not None

    chatting(engine, store, session)


def test_without_clip_weights_there_is_no_offer_and_edits_go_on(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CHATFACE_METHOD_CLIP_MODEL", "clip_vit_b32_openai")  # not installed
    engine.config = load_config()
    store = Store.from_config(engine.config)

    async def session(chat: ConversationCore) -> None:
        await chat.receive_photo("u", "c", (FACES / "grace_hopper.jpg").read_bytes())
        for text in ("make her smile", "make her look like a vampire", "undo"):
            reply = await chat.receive_text("u", "c", text)
            assert "clip_vit_b32_openai" not in reply.text, reply.text
        assert (await chat.receive_text("u", "c", "redo")).image is not None

    chatting(engine, store, session)


def test_off_means_no_offer(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CHATFACE_ZERO_SHOT_ENABLED", "auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    engine.config = load_config()
    store = Store.from_config(engine.config)

    async def session(chat: ConversationCore) -> None:
        await chat.receive_photo("u", "c", (FACES / "grace_hopper.jpg").read_bytes())
        reply = await chat.receive_text("u", "c", "make her look like a vampire")
        assert reply.text.startswith("I can only change face attributes")
        assert (await chat.receive_text("u", "c", "yes")).text.startswith("OK.")

    chatting(engine, store, session)


def test_forget_deletes_what_was_learned_from_the_users_faces(engine) -> None:  # type: ignore[no-untyped-def]
    store = Store.from_config(engine.config)
    root = engine.config.data_dir / "zero_shot" / "vampire"

    async def session(chat: ConversationCore) -> None:
        for user, photo in (("u", "grace_hopper.jpg"), ("v", "obama.jpg")):
            await chat.receive_photo(user, "c", (FACES / photo).read_bytes())
            await chat.receive_text(user, "c", "make them look like a vampire")
            assert (await chat.receive_text(user, "c", "yes")).image is not None
        faces = {p.name: p.read_bytes() for p in (root / "faces").iterdir()}
        assert len(faces) == 2
        start = root / "start-tiny.safetensors"
        assert start.read_bytes() in faces.values()

        assert (await chat.command("u", "c", "forget", "yes")).text.startswith("Done")
        # u's offset is gone; v's stays, and is where the next face starts from.
        left = {p.name: p.read_bytes() for p in (root / "faces").iterdir()}
        assert len(left) == 1 and set(left) < set(faces)
        assert list(left.values()) == [start.read_bytes()]
        assert "vampire" in (await chat.receive_text("v", "c", "list attributes")).text

        assert (await chat.command("v", "c", "forget", "yes")).text.startswith("Done")
        assert not root.exists()  # nobody's face knows it any more

    chatting(engine, store, session)


def test_a_face_forgotten_while_learning_leaves_nothing_learned(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = Store.from_config(engine.config)
    learn = zero_shot_learn.learn_offset

    def forgotten_meanwhile(*args, **kwargs):  # type: ignore[no-untyped-def]
        offset = learn(*args, **kwargs)
        if kwargs.get("steps") is None:  # the learning itself, not the timing probe
            store.forget_user("cli", "u")  # /forget ran while the model was learning
        return offset

    monkeypatch.setattr(zero_shot_learn, "learn_offset", forgotten_meanwhile)

    async def session(chat: ConversationCore) -> None:
        await chat.receive_photo("u", "c", (FACES / "grace_hopper.jpg").read_bytes())
        await chat.receive_text("u", "c", "make her look like a vampire")
        reply = await chat.receive_text("u", "c", "yes")
        assert reply.image is None and "deleted meanwhile" in reply.text

    chatting(engine, store, session)
    assert not (engine.config.data_dir / "zero_shot" / "vampire").exists()


def test_no_learning_when_renders_run_on_replicas(engine) -> None:  # type: ignore[no-untyped-def]
    """Replicas (queue.kind = "ray") would not know an offset learned in the bot's process."""
    from chatface.bots.zero_shot import ZeroShotTurns

    async def learners() -> tuple[object, object]:
        queue = LocalRenderQueue.from_engine(engine)
        here = ZeroShotTurns(engine, queue, None).learner()  # type: ignore[arg-type]
        queue.renders_here = False  # as RayRenderQueue's
        elsewhere = ZeroShotTurns(engine, queue, None).learner()  # type: ignore[arg-type]
        await queue.close()
        return here, elsewhere

    here, elsewhere = asyncio.run(learners())
    assert here is not None and elsewhere is None

"""Nothing is rendered or encoded twice: a turn that lands on a state rendered before is
answered with a copy of that result, a photo the user sent before is not encoded again,
and renders measure identity against the crop as stored (tiny backend and identity model).
"""

from __future__ import annotations

import json

import pytest

from chatface.bots.conversation import ConversationCore
from chatface.config import load_config
from chatface.engine import photos
from chatface.engine.editor import Engine
from chatface.storage import Store
from tests.bots.test_conversation import PHOTO, Plugin, jobs_of, run, same


@pytest.fixture
def setup(pm, add_plugin, monkeypatch):  # type: ignore[no-untyped-def]
    for name, value in {
        "PLANNER_NAME": "scripted", "RENDER_ENCODE_STEPS": "4", "RENDER_STEPS": "3",
        "IDENTITY_MODEL": "tiny",
    }.items():  # fmt: skip
        monkeypatch.setenv(f"CHATFACE_{name}", value)
    add_plugin(Plugin(), "scripted-plugin")
    config = load_config()
    store = Store.from_config(config)
    try:
        yield Engine(config, pm), store
    finally:
        store.close()


def history(store: Store, user: str) -> list:  # type: ignore[type-arg]
    conversation = store.conversations(store.find_user("telegram", user).id)[0]
    return store.history(store.active_face(conversation.id).id)


def test_a_state_rendered_before_is_served_from_its_stored_result(setup, monkeypatch) -> None:
    engine, store = setup
    encoded: list[int] = []
    encode_image = photos.encode_image

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        encoded.append(1)
        return encode_image(*args, **kwargs)

    monkeypatch.setattr(photos, "encode_image", counted)

    async def session(chat: ConversationCore) -> None:
        async def say(text: str):  # type: ignore[no-untyped-def]
            return await chat.receive_text("u1", "c", text)

        await chat.receive_photo("u1", "c", PHOTO.read_bytes())
        encoded.clear()
        smile = await say("smile please")  # smile 0.5: rendered
        assert len(encoded) == 1  # the result only: the crop identity needs is the stored one
        await say("more")  # smile 1.0: rendered
        less = await say("less")  # smile 0.5 again
        assert less.text == "Less smile." and same(less.image, smile.image)
        assert chat.queue.stats().rendered == 2
        await say("start over")
        again = await say("smile please")
        assert same(again.image, smile.image) and chat.queue.stats().rendered == 2
        await say("undo")
        await say("undo")  # back at "less"
        await say("quick smile")  # smile 1.0 in 2 steps, not the 3-step one; drops 2 edits
        assert chat.queue.stats().rendered == 3

    run(engine, store, "telegram", session)
    edits = history(store, "u1")
    states = [json.loads(e.state_json)["strengths"] for e in edits]
    assert states == [{"smile": 0.5}, {"smile": 1.0}, {"smile": 0.5}, {"smile": 1.0}]
    first, _, less, quick = edits
    assert less.result_path != first.result_path  # a copy of its own...
    assert all((store.files_dir / e.result_path).is_file() for e in edits)
    assert (less.identity, less.steps, less.schedule) == (first.identity, 3, first.schedule)
    assert less.identity is not None and quick.steps == 2
    users_dir = store.files_dir / "users"
    assert len(list(users_dir.rglob("face-*.png"))) == 4  # ...the dropped edit's copy is gone
    assert sum(job.kind == "render" for job in jobs_of(store, "telegram", "u1")) == 3

    for edit in (first, less):
        (store.files_dir / edit.result_path).unlink()

    async def result_gone(chat: ConversationCore) -> None:
        assert (await chat.receive_text("u1", "c", "undo")).image is not None
        assert chat.queue.stats().rendered == 1  # no stored result left: rendered again

    run(engine, store, "telegram", result_gone)


def test_a_photo_sent_again_is_not_encoded_again(setup, monkeypatch) -> None:
    engine, store = setup
    encodes: list[int] = []
    open_face = engine.open_face

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        encodes.append(1)
        return open_face(*args, **kwargs)

    monkeypatch.setattr(engine, "open_face", counted)
    photo = PHOTO.read_bytes()

    async def session(chat: ConversationCore) -> None:
        await chat.receive_photo("u1", "c1", photo, "first.jpg")
        again = await chat.receive_photo("u1", "c2", photo, "again.jpg")  # another chat
        assert again.text == "Got the face. What should I change?"
        await chat.receive_photo("u2", "c1", photo)  # another user: encoded
        assert len(encodes) == 2
        smile = await chat.receive_text("u1", "c2", "smile please")
        assert smile.image is not None

    run(engine, store, "telegram", session)
    run(engine, store, "telegram", lambda chat: chat.receive_photo("u1", "c3", photo, "3.jpg"))
    assert len(encodes) == 2  # nor after a restart
    user = store.find_user("telegram", "u1")
    faces = [f for c in store.conversations(user.id) for f in store.faces(c.id)]
    assert [f.source_name for f in faces] == ["first.jpg", "again.jpg", "3.jpg"]
    for face in faces[1:]:
        copied = ("latents", "aligned_png", "inverse_transform", "photo_path", "weights_sha256")
        assert all(getattr(face, name) == getattr(faces[0], name) for name in copied)

    monkeypatch.setattr(engine.backend("tiny"), "weights_sha256", "new weights")
    run(engine, store, "telegram", lambda chat: chat.receive_photo("u1", "c1", photo))
    assert len(encodes) == 3  # other weights: the old latents do not fit them

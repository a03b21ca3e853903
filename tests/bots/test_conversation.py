"""The platform-neutral dialogue, with the tiny backend and a scripted planner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chatface import hookimpl
from chatface.bots.conversation import Conversation
from chatface.config import load_config
from chatface.engine.editor import Engine
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
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_a_whole_session(setup) -> None:
    engine, store = setup
    chat = Conversation(engine, store, "telegram", backend="tiny")
    assert (
        chat.receive_text("u1", "c1", "smile please").text == "Send me a photo with a face first."
    )
    reply = chat.receive_photo("u1", "c1", PHOTO.read_bytes(), "grace.jpg")
    assert reply.text == "Got the face. What should I change?" and reply.image is None
    original = chat.receive_text("u1", "c1", "original?").image
    assert original is not None and original.size == (384, 384)  # the photo as it came

    smile = chat.receive_text("u1", "c1", "smile please")
    assert smile.text == "Adding a smile." and smile.image is not None
    assert not same(smile.image, original)
    more = chat.receive_text("u1", "c1", "more")
    assert chat.receive_text("u1", "c1", "what state?").text == "state={'smile': 1.0}"

    undone = chat.receive_text("u1", "c1", "undo")
    assert same(undone.image, smile.image)  # exact: rendered again from the same state
    assert same(chat.receive_text("u1", "c1", "undo").image, original)
    assert chat.receive_text("u1", "c1", "undo").text == "Nothing to undo."
    assert same(chat.receive_text("u1", "c1", "redo").image, smile.image)
    assert same(chat.receive_text("u1", "c1", "redo").image, more.image)
    assert chat.receive_text("u1", "c1", "redo").text == "Nothing to redo."
    assert same(chat.receive_text("u1", "c1", "start over").image, original)
    assert same(chat.receive_text("u1", "c1", "undo").image, more.image)  # reset is undoable

    assert "undo" in chat.receive_text("u1", "c1", "help").text
    assert "smile" in chat.receive_text("u1", "c1", "attributes").text

    face = store.active_face(store.conversations(store.find_user("telegram", "u1").id)[0].id)
    history = store.history(face.id)
    assert [e.seq for e in history] == [1, 2, 3] and face.cursor == 2
    assert all((store.files_dir / e.result_path).is_file() for e in history[:2])
    log = store.messages(
        store.conversations(face.id and store.find_user("telegram", "u1").id)[0].id, 100
    )
    assert [m.role for m in log[:2]] == ["user", "bot"]


def test_after_a_restart_renders_come_from_storage(setup) -> None:
    engine, store = setup
    first = Conversation(engine, store, "discord", backend="tiny")
    first.receive_photo("u2", "c", PHOTO.read_bytes())
    quick = first.receive_text("u2", "c", "quick")  # rendered with 2 steps, once
    smile = first.receive_text("u2", "c", "smile please")
    for result in (store.files_dir / "users").rglob("face-*-edit-2.png"):
        result.unlink()  # the smile must now be rendered again, from storage alone
    again = Conversation(engine, store, "discord", backend="tiny")  # a new process: no cache
    assert same(again.receive_text("u2", "c", "undo").image, quick.image)  # the stored image
    assert same(again.receive_text("u2", "c", "redo").image, smile.image)  # re-rendered


def test_bad_photos_and_users_are_kept_apart(setup, tmp_path) -> None:
    engine, store = setup
    chat = Conversation(engine, store, "telegram", backend="tiny")
    assert "not an image" in chat.receive_photo("u3", "c", b"hello there").text.lower()
    chat.receive_photo("u4", "c", PHOTO.read_bytes())
    chat.receive_text("u4", "c", "smile please")
    assert chat.receive_text("u3", "c", "smile please").text == "Send me a photo with a face first."
    store.forget_user("telegram", "u4")
    assert not (store.files_dir / "users").exists() or not any(
        p.name.startswith("face-") for p in (store.files_dir / "users").rglob("*")
    )

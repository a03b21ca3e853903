"""Identity in the chat (tiny backend, tiny identity model): measured and stored with
each edit, shown by /identity and /history, and the identity guard lowering a turn's
edit with its extra renders in one batch, the lowered state stored and the reply saying
so; with the guard off nothing changes."""

from __future__ import annotations

import json

import pytest

from chatface.bots.conversation import ConversationCore
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.storage import Store
from tests.bots.test_conversation import PHOTO, Plugin, run
from tests.engine.test_batch import batches


@pytest.fixture
def chat_setup(pm, add_plugin, monkeypatch):  # type: ignore[no-untyped-def]
    for name, value in {
        "PLANNER_NAME": "scripted", "RENDER_ENCODE_STEPS": "4", "RENDER_STEPS": "3",
        "IDENTITY_MODEL": "tiny",
    }.items():  # fmt: skip
        monkeypatch.setenv(f"CHATFACE_{name}", value)

    def make(**settings: str):  # type: ignore[no-untyped-def]
        for name, value in settings.items():
            monkeypatch.setenv(f"CHATFACE_IDENTITY_{name.upper()}", value)
        config = load_config()
        return Engine(config, pm), Store.from_config(config)

    add_plugin(Plugin(), "scripted-plugin")
    return make


def edits_of(store: Store) -> list:  # type: ignore[type-arg]
    conversation = store.conversations(store.find_user("telegram", "u1").id)[0]
    return store.history(store.active_face(conversation.id).id)


async def two_smiles(chat: ConversationCore) -> list:  # type: ignore[type-arg]
    await chat.receive_photo("u1", "c1", PHOTO.read_bytes(), "grace.jpg")
    return [await chat.receive_text("u1", "c1", text) for text in ("smile please", "more")]


def test_identity_is_stored_and_shown(chat_setup) -> None:
    engine, store = chat_setup()
    with store:
        calls = batches(engine)

        async def session(chat: ConversationCore) -> tuple:  # type: ignore[type-arg]
            replies = await two_smiles(chat)
            return (
                replies,
                await chat.command("u1", "c1", "identity"),
                await chat.command("u1", "c1", "history"),
            )

        replies, shown, history = run(engine, store, "telegram", session)
        assert calls == [1, 1]  # measuring renders nothing more
        assert [r.text for r in replies] == ["Adding a smile.", "More smile."]
        edits = edits_of(store)
        assert all(e.identity is not None and -1 <= e.identity <= 1 for e in edits)
        assert [json.loads(e.state_json)["strengths"] for e in edits] == [
            {"smile": 0.5}, {"smile": 1.0},
        ]  # fmt: skip
        assert f"{edits[-1].identity:.2f}" in shown.text
        assert history.text.splitlines()[2] == (
            f"2. smile +0.50 (identity {edits[-1].identity:.2f})  <- now"
        )


def test_the_guard_lowers_the_turn_and_says_so(chat_setup) -> None:
    engine, store = chat_setup(guard="true", guard_threshold="1.01")  # nothing passes
    with store:
        calls = batches(engine)
        replies = run(engine, store, "telegram", two_smiles)
        # Each turn: its render, then its two lower strengths in one model call.
        assert calls == [1, 2, 1, 2]
        for reply in replies:
            assert "Identity guard" in reply.text and "1/3 of it" in reply.text
            assert "below 1.01" in reply.text and reply.image is not None
        edits = edits_of(store)
        # Turn 1: 1/3 of smile 0.5; turn 2 starts from that and keeps 1/3 of its +0.5.
        states = [json.loads(e.state_json)["strengths"]["smile"] for e in edits]
        assert states == pytest.approx([0.5 / 3, 0.5 / 3 + 0.5 / 3], abs=1e-3)
        assert all(e.identity is not None for e in edits)


def test_an_undo_is_never_guarded_even_when_it_renders_again(chat_setup) -> None:
    engine, store = chat_setup(guard="true", guard_threshold="1.01")

    async def session(chat: ConversationCore):  # type: ignore[no-untyped-def]
        await two_smiles(chat)
        # The first edit's image is gone, so the undo renders it again.
        (store.files_dir / edits_of(store)[0].result_path).unlink()
        return await chat.receive_text("u1", "c1", "undo")

    with store:
        before = (
            [e.state_json for e in edits_of(store)] if store.find_user("telegram", "u1") else []
        )
        assert before == []
        undo = run(engine, store, "telegram", session)
        assert undo.image is not None and "Identity guard" not in undo.text
        states = [json.loads(e.state_json)["strengths"]["smile"] for e in edits_of(store)]
        assert states == pytest.approx([0.5 / 3, 0.5 / 3 + 0.5 / 3], abs=1e-3)  # as stored


def test_without_the_guard_or_identity_weights_nothing_changes(chat_setup) -> None:
    engine, store = chat_setup(model="facenet")  # its weights are not installed
    with store:
        calls = batches(engine)

        async def session(chat: ConversationCore) -> tuple:  # type: ignore[type-arg]
            return await two_smiles(chat), await chat.command("u1", "c1", "identity")

        replies, shown = run(engine, store, "telegram", session)
        assert calls == [1, 1]
        assert [r.text for r in replies] == ["Adding a smile.", "More smile."]
        assert all(e.identity is None for e in edits_of(store))
        assert "not measured" in shown.text

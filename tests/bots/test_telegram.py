"""The Telegram bot end to end: the real python-telegram-bot against the fake Bot API
(real HTTP on 127.0.0.1), over the real conversation core, render queue and SQLite
store, with the tiny backend and the rule planner.

pytest-asyncio is not installed, so each test runs its scenario with :func:`run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from chatface.bots import telegram
from chatface.bots.conversation import (
    COMMANDS,
    HELP,
    NO_FACE,
    TOO_FAST,
    WELCOME,
    ConversationCore,
)
from chatface.bots.telegram_status import StatusMessage
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.queue import LocalRenderQueue
from chatface.errors import ChatFaceError, KeyStoreError
from chatface.storage import Store
from tests.cli.test_cli import invoke
from tests.fakes.telegram_server import TOKEN, UNREACHABLE, WEBHOOK, Call, FakeTelegramServer
from tests.fakes.telegram_webhook import SECRET_HEADER, free_port

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
PHOTO = (FACES / "grace_hopper.jpg").read_bytes()
CHAT = USER = 5001
WAIT_S = 60.0  # for a reply; they come in well under a second on an idle machine


def result_keyboard(owner: int | str = USER) -> dict[str, Any]:
    """The buttons under a result of ``owner`` (with no owner: as sent before they had one)."""
    suffix = f":{owner}" if owner != "" else ""
    return {"inline_keyboard": [
        [{"text": label, "callback_data": f"cf:{name}{suffix}"}
         for label, name in (("Undo", "undo"), ("Redo", "redo"), ("Original", "original"),
                             ("Reset", "reset"))],
        [{"text": "Full size", "callback_data": f"cf:full{suffix}"}],
    ]}  # fmt: skip


@pytest.fixture
def server() -> Any:
    with FakeTelegramServer() as fake:
        yield fake


def make_engine(pm, monkeypatch: pytest.MonkeyPatch, **settings: str) -> Engine:  # type: ignore[no-untyped-def]
    """The tiny backend with one encoding and two rendering steps, unless ``settings``
    (CHATFACE_* variables) say otherwise."""
    defaults = {"CHATFACE_ENGINE_BACKEND": "tiny", "CHATFACE_RENDER_ENCODE_STEPS": "1",
                "CHATFACE_RENDER_STEPS": "2"}  # fmt: skip
    for name, value in {**defaults, **settings}.items():
        monkeypatch.setenv(name, value)
    return Engine(load_config(), pm)


@pytest.fixture
def engine(pm, monkeypatch: pytest.MonkeyPatch) -> Engine:  # type: ignore[no-untyped-def]
    return make_engine(pm, monkeypatch)


async def waited(server: FakeTelegramServer, method: str, *args: Any, **params: Any) -> Call:
    """``server.wait_for`` with room for a slow, busy test machine."""
    return await server.wait_for(method, *args, timeout=WAIT_S, **params)


def run(coro: Coroutine[Any, Any, Any], limit_s: float = 4 * WAIT_S) -> Any:
    """Run a scenario; a hang fails the test instead of stalling the run."""
    return asyncio.run(asyncio.wait_for(coro, limit_s))


@contextlib.asynccontextmanager
async def serving(
    server: FakeTelegramServer, engine: Engine, webhook: telegram.Webhook | None = None
) -> AsyncIterator[ConversationCore]:
    """The bot polling the fake (or on ``webhook``), as `chatface serve telegram` runs it
    (status edits are not throttled, so that each test sees them)."""
    store = Store.from_config(engine.config)
    queue = LocalRenderQueue.from_engine(engine)
    core = ConversationCore(engine, store, queue, "telegram", backend="tiny")
    try:
        urls = {"base_url": server.base_url, "base_file_url": server.base_file_url}
        async with telegram.running(
            core, TOKEN, webhook=webhook, status_interval_s=0, poll_timeout_s=5, **urls
        ):
            yield core
    finally:
        await queue.close()
        core.close()
        store.close()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def texts(server: FakeTelegramServer, chat: int) -> list[str]:
    return [c.params["text"] for c in server.calls_to("sendMessage") if c.params["chat_id"] == chat]


def failures(server: FakeTelegramServer) -> list[Call]:
    """Calls the fake refused, apart from the long poll PTB abandons when it stops."""
    return [
        c for c in server.calls if not c.ok and not (c.method == "getUpdates" and c.status == 499)
    ]


def in_chat(chat: int) -> Any:
    return lambda call: call.params.get("chat_id") == chat


def test_photo_edit_with_status_then_buttons(server: FakeTelegramServer, engine: Engine) -> None:
    async def scenario() -> dict[str, Call]:
        async with serving(server, engine):
            server.user_sends_photo(CHAT, USER, PHOTO)
            got = await waited(server, "sendMessage", lambda c: "face" in c.params["text"])
            server.user_sends_text(CHAT, USER, "make her smile")
            smile = await waited(server, "sendPhoto", since=got.index)
            message_id = smile.result["message_id"]
            server.user_presses_button(CHAT, USER, message_id, f"cf:full:{USER}")
            full = await waited(server, "sendDocument", since=smile.index)
            server.user_presses_button(CHAT, USER, message_id, f"cf:undo:{USER}")
            undone = await waited(server, "sendPhoto", since=full.index)
            return {"got": got, "smile": smile, "full": full, "undone": undone}

    seen = run(scenario())
    assert seen["got"].params["text"].startswith("Got the face")
    smile = seen["smile"]
    assert smile.params["caption"] == "Adding a medium smile."
    assert smile.params["reply_markup"] == result_keyboard()
    upload = smile.upload("photo")
    assert (upload.filename, upload.content_type) == ("chatface.png", "image/png")
    original = pixels(PHOTO)
    assert pixels(upload.data).shape == original.shape  # pasted back into the whole photo
    assert not np.array_equal(pixels(upload.data), original)

    # One status message for the render: sent, edited with the steps, deleted at the end.
    during = [c for c in server.calls if seen["got"].index < c.index < smile.index]
    (status,) = [c for c in during if c.method == "sendMessage"]
    assert status.params["text"] == "Working on it…"
    status_id = status.result["message_id"]
    edits = [c for c in during if c.method == "editMessageText"]
    assert edits and {c.params["message_id"] for c in edits} == {status_id}
    assert edits[-1].params["text"] == "Rendering 2/2"
    assert [c.params["message_id"] for c in during if c.method == "deleteMessage"] == [status_id]
    assert "Working on it…" not in [m.get("text") for m in server.bot_messages(CHAT)]
    assert any(c.params["action"] == "upload_photo" for c in server.calls_to("sendChatAction"))

    # Full size: the very PNG as a file. Undo: the original photo, with the buttons again.
    assert seen["full"].upload("document").data == upload.data
    answers = server.callback_answers
    assert len(answers) == 2 and all(set(a) == {"callback_query_id"} for a in answers.values())
    undone = seen["undone"]
    assert np.array_equal(pixels(undone.upload("photo").data), original)
    assert undone.params["reply_markup"] == result_keyboard()
    assert failures(server) == [] and server.pending_updates() == []


@pytest.mark.parametrize(
    ("file_name", "mime_type"), [("me.png", "image/png"), ("me.heic", "image/heic")]
)
def test_an_image_document_at_full_resolution(
    server: FakeTelegramServer, engine: Engine, file_name: str, mime_type: str
) -> None:
    picture = Image.open(io.BytesIO(PHOTO))
    buffer = io.BytesIO()
    if mime_type == "image/heic":  # as an iPhone sends it
        import pillow_heif

        pillow_heif.register_heif_opener()  # for saving one here
        picture.save(buffer, format="HEIF")
    else:
        picture.save(buffer, format="PNG")

    async def scenario() -> Call:
        async with serving(server, engine):
            server.user_sends_photo(CHAT, USER, buffer.getvalue(), as_document=True,
                                    file_name=file_name, mime_type=mime_type)  # fmt: skip
            await waited(server, "sendMessage", lambda c: "face" in c.params["text"])
            server.user_sends_command(CHAT, USER, "/original")
            return await waited(server, "sendPhoto")

    original = run(scenario())
    (get_file,) = server.calls_to("getFile")
    assert server.files[get_file.params["file_id"]].file_name == file_name
    assert np.array_equal(pixels(original.upload("photo").data), pixels(buffer.getvalue()))
    assert failures(server) == []


def test_commands_menu_and_forget_with_confirmation(
    server: FakeTelegramServer, engine: Engine
) -> None:
    async def scenario() -> Call:
        async with serving(server, engine) as core:
            for command in ("/start", "/help", "/attributes", "/status", "/history"):
                server.user_sends_command(CHAT, USER, command)
                await waited(server, "sendMessage", in_chat(CHAT), since=len(server.calls))
            server.user_sends_command(CHAT, USER, "/forget")
            ask = await waited(server, "sendMessage", lambda c: "reply_markup" in c.params)
            here = await asyncio.to_thread(core.store.find_user, "telegram", str(USER))
            assert here is not None
            server.user_presses_button(
                CHAT, USER, ask.result["message_id"], f"cf:forget:yes:{USER}"
            )
            await waited(server, "editMessageText", message_id=ask.result["message_id"])
            gone = await asyncio.to_thread(core.store.find_user, "telegram", str(USER))
            assert gone is None
            return ask

    ask = run(scenario())
    (answered,) = server.bot_messages(CHAT)[-1:]
    assert answered["text"].startswith("Done: I deleted everything")
    assert "reply_markup" not in answered  # the Yes/No buttons are gone
    assert ask.params["reply_markup"] == {"inline_keyboard": [[
        {"text": "Yes, delete", "callback_data": f"cf:forget:yes:{USER}"},
        {"text": "No", "callback_data": f"cf:forget:no:{USER}"},
    ]]}  # fmt: skip
    start, help_, attributes, status, history, forget = texts(server, CHAT)
    assert (start, help_, history) == (WELCOME, HELP, NO_FACE)
    assert "smile" in attributes and "eyeglasses" in attributes
    assert status.startswith("Nothing of yours is waiting")
    assert forget == ask.params["text"]
    names = [c.name for c in COMMANDS] + ["full"]
    english = server.commands[('{"type": "default"}', "")]
    chinese = server.commands[('{"type": "default"}', "zh")]
    assert [c["command"] for c in english] == names == [c["command"] for c in chinese]
    assert english[0]["description"] == COMMANDS[0].description
    assert chinese[0]["description"] == COMMANDS[0].description_zh
    assert failures(server) == []


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, a few hundred bytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(bytes(width + 1) * 4)  # a few rows of black: the rest is missing
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def test_bad_inputs_get_clear_replies(server: FakeTelegramServer, engine: Engine) -> None:
    no_face = io.BytesIO()
    Image.new("RGB", (300, 300), (120, 160, 200)).save(no_face, format="PNG")
    bad = {  # chat -> (what the user sends, words the reply must have)
        1: (("doc", b"this is not a picture at all", "x.jpg"), "not"),
        2: (("doc", PHOTO[: len(PHOTO) // 2], "cut.jpg"), "damaged or incomplete"),
        3: (("doc", png_bomb(), "bomb.png"), "too many pixels"),
        4: (("doc", b"\xff\xd8" + bytes(20_000_001), "huge.jpg"), "20.0 MB; the limit is 20 MB"),
        5: (("photo", no_face.getvalue(), ""), "No face found"),
        6: (("text", "   ", ""), "Send me a photo"),
        7: (("text", "smile " * 1667, ""), "too long"),
        8: (("text", "/teleport", ""), "Send me a photo"),
    }

    async def scenario() -> None:
        async with serving(server, engine):
            for chat, ((kind, payload, name), _) in bad.items():
                if kind == "doc":
                    server.user_sends_photo(chat, chat, payload, as_document=True,
                                            file_name=name, mime_type="image/jpeg")  # fmt: skip
                elif kind == "photo":
                    server.user_sends_photo(chat, chat, payload)
                else:
                    server.user_sends_text(chat, chat, payload)
            for chat in bad:
                await waited(server, "sendMessage", in_chat(chat))
            # And the bot keeps serving.
            server.user_sends_command(CHAT, USER, "/help")
            await waited(server, "sendMessage", in_chat(CHAT))

    run(scenario())
    for chat, (_, words) in bad.items():
        (reply,) = texts(server, chat)
        assert words in reply, (chat, reply)
        assert len(reply) <= 4096
    huge = next(f for f in server.files.values() if f.file_name == "huge.jpg")
    assert huge.file_id not in [c.params["file_id"] for c in server.calls_to("getFile")]
    assert server.calls_to("sendPhoto") == []
    assert failures(server) == []


def test_a_failed_download_gets_a_clear_reply(server: FakeTelegramServer, engine: Engine) -> None:
    server.fail_next("getFile", 400, "Bad Request: file is too big")

    async def scenario() -> None:
        async with serving(server, engine):
            server.user_sends_photo(CHAT, USER, PHOTO)
            await waited(server, "sendMessage", in_chat(CHAT))

    run(scenario())
    assert texts(server, CHAT) == ["I could not download that photo; please send it again."]
    assert [c.status for c in server.calls_to("getFile")] == [400]


def test_a_flood_gets_a_polite_limit_and_others_are_still_served(
    server: FakeTelegramServer, engine: Engine
) -> None:
    other = 6002

    async def scenario() -> None:
        async with serving(server, engine):
            for n in range(50):
                server.user_sends_text(CHAT, USER, f"hello {n}")
            await waited(server, "sendMessage", lambda c: c.params["text"] == TOO_FAST)
            server.user_sends_command(other, other, "/help")
            await waited(server, "sendMessage", in_chat(other))

    run(scenario())
    answers = texts(server, CHAT)
    limit = engine.config["bots.rate_limit_per_minute"]
    assert len(answers) == limit + 1  # each accepted message, and one warning
    assert answers.count(TOO_FAST) == 1
    assert failures(server) == []


def no_face_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (120, 160, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_flood_of_photos_is_limited_before_any_download(
    server: FakeTelegramServer,
    pm,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    engine = make_engine(pm, monkeypatch, CHATFACE_BOTS_RATE_LIMIT_PER_MINUTE="3")
    photo = no_face_png()  # quick to refuse: the test is about what is downloaded

    async def scenario() -> None:
        async with serving(server, engine):
            for _ in range(50):
                server.user_sends_photo(CHAT, USER, photo)
            await waited(server, "sendMessage", lambda c: len(texts(server, CHAT)) > 3)
            server.user_sends_command(CHAT + 1, USER + 1, "/help")  # others are still served
            await waited(server, "sendMessage", in_chat(CHAT + 1))

    run(scenario())
    answers = texts(server, CHAT)
    assert answers.count(TOO_FAST) == 1 and len(answers) == 4
    assert all(a.startswith("No face found") for a in answers if a != TOO_FAST), answers
    assert len(server.calls_to("getFile")) == 3  # the refused photos were never fetched
    assert failures(server) == []


def test_a_text_sent_right_after_a_photo_is_planned_on_its_face(
    server: FakeTelegramServer, engine: Engine
) -> None:
    """Both arrive in one batch and are handled at once; the photo is downloaded in the
    chat's turn, so the text waits for its face instead of finding none."""
    server.user_sends_photo(CHAT, USER, PHOTO)
    server.user_sends_text(CHAT, USER, "make her smile")  # before the first poll: one batch

    async def scenario() -> Call | None:
        async with serving(server, engine):
            await waited(server, "sendMessage", lambda c: c.params["text"].startswith("Got"))
            if NO_FACE in texts(server, CHAT):
                return None
            return await waited(server, "sendPhoto")

    smile = run(scenario())
    assert NO_FACE not in texts(server, CHAT)
    assert smile is not None and smile.params["caption"] == "Adding a medium smile."
    assert len(server.deliveries[0]) == 2  # the two did come together
    assert failures(server) == []


def test_buttons_in_a_group_belong_to_whoever_got_the_result(
    server: FakeTelegramServer, engine: Engine
) -> None:
    """A button acts on the presser's own session: someone else pressing Undo under your
    result is told so, privately, and nothing else happens. Buttons sent before they
    named their owner still act for whoever presses them."""
    group, other = -4001, USER + 1

    async def scenario() -> dict[str, Call]:
        async with serving(server, engine) as core:
            server.user_sends_photo(group, USER, PHOTO, caption="make her smile")
            smile = await waited(server, "sendPhoto", in_chat(group))
            message_id = smile.result["message_id"]
            server.user_presses_button(group, other, message_id, f"cf:undo:{USER}")
            refused = await waited(server, "answerCallbackQuery", since=smile.index)
            server.user_presses_button(group, USER, message_id, f"cf:undo:{USER}")
            undone = await waited(server, "sendPhoto", in_chat(group), since=refused.index)
            server.replace_buttons(group, message_id, result_keyboard(""))
            server.user_presses_button(group, USER, message_id, "cf:redo")
            redone = await waited(server, "sendPhoto", in_chat(group), since=undone.index + 1)
            server.user_sends_command(group, USER, "/forget")
            ask = await waited(server, "sendMessage", in_chat(group), since=redone.index)
            yes = f"cf:forget:yes:{USER}"
            server.user_presses_button(group, other, ask.result["message_id"], yes)
            not_forgotten = await waited(server, "answerCallbackQuery", since=ask.index)
            assert await asyncio.to_thread(core.store.find_user, "telegram", str(USER))
            return {"smile": smile, "refused": refused, "undone": undone, "redone": redone,
                    "ask": ask, "not_forgotten": not_forgotten}  # fmt: skip

    seen = run(scenario())
    smile = seen["smile"]
    assert smile.params["reply_markup"] == result_keyboard(USER)
    for refused in (seen["refused"].params, seen["not_forgotten"].params):
        assert refused["text"] == telegram.NOT_YOURS and refused["show_alert"] is True
    assert np.array_equal(pixels(seen["undone"].upload("photo").data), pixels(PHOTO))
    assert seen["redone"].upload("photo").data == smile.upload("photo").data
    after = [c for c in server.calls[smile.index :] if c.method == "sendMessage"]
    assert after == [seen["ask"]]  # nothing for the other user ("send me a photo first")
    assert failures(server) == []


def test_a_stop_lets_the_edit_being_rendered_finish(
    server: FakeTelegramServer,
    pm,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """PTB's ``Application.stop`` waits for the handlers that run (we bound the wait): an
    edit still rendering when the bot is stopped is sent before it exits."""
    engine = make_engine(pm, monkeypatch, CHATFACE_RENDER_STEPS="20")

    async def scenario() -> None:
        async with serving(server, engine):
            server.user_sends_photo(CHAT, USER, PHOTO, caption="make her smile")
            await waited(server, "editMessageText", text="Rendering 1/20")

    run(scenario())
    (result,) = server.calls_to("sendPhoto")
    assert result.params["caption"] == "Adding a medium smile."
    assert failures(server) == []


def test_two_users_edit_at_once(server: FakeTelegramServer, engine: Engine) -> None:
    users = {7001: "grace_hopper.jpg", 7002: "obama.jpg"}

    async def scenario() -> None:
        async with serving(server, engine):
            for user, name in users.items():
                server.user_sends_photo(user, user, (FACES / name).read_bytes())
            for user in users:
                await waited(server, "sendMessage", lambda c, u=user: c.params["chat_id"] == u
                                      and "face" in c.params["text"])  # fmt: skip
            for user in users:
                server.user_sends_text(user, user, "make her smile")
            for user in users:
                await waited(server, "sendPhoto", in_chat(user))

    run(scenario())
    for user, name in users.items():
        (result,) = [c for c in server.calls_to("sendPhoto") if c.params["chat_id"] == user]
        assert (
            pixels(result.upload("photo").data).shape == pixels((FACES / name).read_bytes()).shape
        )
    assert failures(server) == []


def test_a_429_is_retried_and_the_token_is_never_logged(
    server: FakeTelegramServer,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB reads retry_after: no int deprecation
    caplog.set_level(logging.DEBUG)
    server.rate_limit("sendMessage", retry_after=0.1)
    secret = "make her smile with a secret word"

    async def scenario() -> None:
        async with serving(server, engine):
            server.user_sends_command(CHAT, USER, "/help")
            helped = await waited(server, "sendMessage", lambda c: c.ok)
            server.user_sends_text(CHAT, USER, secret)
            await waited(server, "sendMessage", since=helped.index + 1)

    run(scenario())
    assert [c.status for c in server.calls_to("sendMessage")][:2] == [429, 200]
    logged = caplog.text
    assert logged  # PTB and chatface did log
    assert TOKEN not in logged and TOKEN.split(":")[1] not in logged
    assert "secret word" not in logged


def serve_command(
    server: FakeTelegramServer, encode_steps: int = 1, **settings: str
) -> tuple[list[str], dict[str, str]]:
    command = [sys.executable, "-m", "chatface", "serve", "telegram",
               "--base-url", server.base_url, "--base-file-url", server.base_file_url]  # fmt: skip
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "CHATFACE_ENGINE_BACKEND": "tiny",
           "CHATFACE_RENDER_ENCODE_STEPS": str(encode_steps),
           "CHATFACE_RENDER_STEPS": "2", **settings}  # fmt: skip
    return command, env


@contextlib.contextmanager
def serve_process(
    server: FakeTelegramServer, encode_steps: int = 1, **settings: str
) -> Iterator[subprocess.Popen]:
    """`chatface serve telegram` against the fake (``settings``: more CHATFACE_*
    variables), polling once this returns; killed on exit if still running."""
    command, env = serve_command(server, encode_steps, **settings)
    since = len(server.calls)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        server.wait_for_sync("getUpdates", answered=False, since=since, timeout=WAIT_S)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def stop(process: subprocess.Popen) -> str:
    """SIGTERM, as systemd or Docker stop a service; the process's stderr."""
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=WAIT_S)
    assert process.returncode == 0, err
    return err


def test_serve_telegram_runs_until_sigterm(server: FakeTelegramServer) -> None:
    with serve_process(server) as process:
        server.user_sends_photo(CHAT, USER, PHOTO)
        server.wait_for_sync("sendMessage", lambda c: "face" in c.params["text"], timeout=WAIT_S)
        server.user_sends_text(CHAT, USER, "make her smile")
        result = server.wait_for_sync("sendPhoto", timeout=WAIT_S)
        err = stop(process)
    assert result.params["caption"] == "Adding a medium smile."
    assert "@chatface_test_bot is running (long polling)" in err and "Stopped." in err
    assert TOKEN.split(":")[1] not in err
    assert "Traceback" not in err
    assert server.calls[-1].method == "getUpdates"  # polling stopped cleanly


def test_a_photo_cut_off_by_kill_9_is_answered_after_a_restart(
    server: FakeTelegramServer,
) -> None:
    def got_face() -> list[str]:
        return [t for t in texts(server, CHAT) if t.startswith("Got the face")]

    # Many encoding steps: the kill lands while the face is being encoded.
    with serve_process(server, encode_steps=500) as process:
        photo = server.user_sends_photo(CHAT, USER, PHOTO)
        server.wait_for_sync("sendMessage", text="Working on it…", timeout=WAIT_S)  # step 1
        process.kill()
        process.communicate()
    assert got_face() == []
    with serve_process(server) as process:
        server.wait_for_sync("sendMessage", lambda c: c.params["text"].startswith("Got the face"),
                             timeout=WAIT_S)  # fmt: skip
        server.user_sends_text(CHAT, USER, "make her smile")
        result = server.wait_for_sync("sendPhoto", timeout=WAIT_S)
        stop(process)
    assert len(got_face()) == 1
    # The update was confirmed before the kill: the answer came from the job row alone.
    assert sum(photo in batch for batch in server.deliveries) == 1
    assert result.params["caption"] == "Adding a medium smile."


def test_on_ray_a_job_waits_in_storage_while_the_cluster_is_unreachable(
    server: FakeTelegramServer,
) -> None:
    """queue.kind = "ray": the bot stops at once while its cluster cannot be reached,
    leaving a photo job the last run left; started with the cluster there, it encodes and
    renders on the replicas and answers everything once."""
    with serve_process(server, encode_steps=500) as process:
        server.user_sends_photo(CHAT, USER, PHOTO)
        server.wait_for_sync("sendMessage", text="Working on it…", timeout=WAIT_S)
        process.kill()
        process.communicate()
    command, env = serve_command(
        server, CHATFACE_QUEUE_KIND="ray", CHATFACE_QUEUE_RAY_ADDRESS="127.0.0.1:9"
    )
    down = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WAIT_S)
    assert down.returncode != 0
    assert "Cannot reach the Ray cluster at '127.0.0.1:9'" in down.stderr
    assert "Traceback" not in down.stderr
    assert not [t for t in texts(server, CHAT) if t.startswith("Got the face")]
    with serve_process(server, CHATFACE_QUEUE_KIND="ray") as process:  # Ray on this machine
        server.wait_for_sync("sendMessage", lambda c: c.params["text"].startswith("Got the face"),
                             timeout=WAIT_S)  # fmt: skip
        server.user_sends_text(CHAT, USER, "make her smile")
        result = server.wait_for_sync("sendPhoto", timeout=WAIT_S)
        stop(process)
    assert len([t for t in texts(server, CHAT) if t.startswith("Got the face")]) == 1
    assert result.params["caption"] == "Adding a medium smile."


def test_serve_telegram_without_a_token_names_both_ways_to_set_it() -> None:
    with pytest.raises(KeyStoreError) as missing:
        invoke("serve", "telegram")
    message = str(missing.value)
    assert "chatface keys set telegram" in message and "$TELEGRAM_BOT_TOKEN" in message
    assert "\n" not in message


def test_webhook_options_are_checked_and_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("CHATFACE_ENGINE_BACKEND", "tiny")
    monkeypatch.setenv("CHATFACE_BOTS_TELEGRAM_BASE_URL", "http://127.0.0.1:1/bot")
    passed: dict[str, Any] = {}
    monkeypatch.setattr(telegram, "run", lambda *args, **options: passed.update(options))
    url = "https://bot.example.org/chatface"
    invoke("serve", "telegram", "--webhook-url", url, "--listen", "0.0.0.0", "--port", "88")
    assert passed["webhook"] == telegram.Webhook(url, "0.0.0.0", 88)
    assert passed["base_url"] == "http://127.0.0.1:1/bot"  # the setting
    invoke("serve", "telegram", "--base-url", "http://127.0.0.1:2/bot")
    assert passed["webhook"] is None and passed["base_url"] == "http://127.0.0.1:2/bot"

    for options, words in [
        (["--listen", "0.0.0.0"], "only go with --webhook-url"),
        (["--webhook-url", "ftp://bot.example.org"], "https://"),
        (["--webhook-url", url, "--port", "70000"], "between 1 and 65535"),
    ]:
        with pytest.raises(ChatFaceError, match=words):
            invoke("serve", "telegram", *options)


def test_webhook_mode_end_to_end(
    server: FakeTelegramServer, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The fake POSTs each update to PTB's webhook server; a forged POST is refused; a stop
    leaves the webhook set (PTB 22 does not delete it), so an update sent while the bot is
    down waits at Telegram and is answered after the restart."""
    caplog.set_level(logging.DEBUG)
    port = free_port()
    webhook = telegram.Webhook(f"http://127.0.0.1:{port}/telegram", "127.0.0.1", port)
    stranger = 6001
    forged_update = {"update_id": 1, "message": {
        "message_id": 1, "date": 0, "chat": {"id": stranger, "type": "private"},
        "from": {"id": stranger, "is_bot": False, "first_name": "Eve"}, "text": "/forget",
    }}  # fmt: skip

    async def scenario() -> dict[str, Any]:
        async with serving(server, engine, webhook=webhook):
            server.user_sends_photo(CHAT, USER, PHOTO)
            got = await waited(server, "sendMessage", lambda c: "face" in c.params["text"])
            async with httpx.AsyncClient() as client:
                forged = [await client.post(webhook.url, json=forged_update, headers=headers)
                          for headers in ({}, {SECRET_HEADER: "wrong"})]  # fmt: skip
            server.user_sends_text(CHAT, USER, "make her smile")
            smile = await waited(server, "sendPhoto", since=got.index)
            stopping = len(server.calls)
        down = server.user_sends_text(CHAT, USER, "make her smile")
        refused = await waited(server, WEBHOOK, update_id=down, attempt=2)
        assert server.webhook is not None
        kept = (server.webhook.url, server.pending_updates(), server.webhook.last_error_message)
        async with serving(server, engine, webhook=webhook):
            again = await waited(server, "sendPhoto", since=refused.index)
        return {"forged": forged, "smile": smile, "stop": server.calls[stopping:refused.index],
                "refused": refused, "kept": kept, "down": down, "again": again}  # fmt: skip

    seen = run(scenario())
    first_set, second_set = server.calls_to("setWebhook")
    secret = first_set.params["secret_token"]
    assert first_set.params == {"url": webhook.url, "secret_token": secret, "max_connections": 40,
                                "allowed_updates": ["message", "callback_query"]}  # fmt: skip
    assert second_set.params == first_set.params and TOKEN.split(":")[1] not in secret
    assert [response.status_code for response in seen["forged"]] == [403, 403]
    assert not [c for c in server.calls if c.params.get("chat_id") == stranger]
    assert seen["smile"].params["reply_markup"] == result_keyboard()
    assert not server.calls_to("getUpdates") and not server.calls_to("deleteWebhook")
    # Stopping called nothing; Telegram kept the webhook and the update sent meanwhile.
    assert [c.method for c in seen["stop"]] == [WEBHOOK]
    assert seen["refused"].status == UNREACHABLE
    assert seen["kept"] == (webhook.url, [seen["down"]], "Connection refused")
    assert seen["again"].params["caption"] == seen["smile"].params["caption"]
    assert server.pending_updates() == []
    assert TOKEN.split(":")[1] not in caplog.text and secret not in caplog.text
    assert "make her smile" not in caplog.text


def test_status_edits_are_throttled() -> None:
    """Within ``interval_s`` of the last edit newer steps wait; the job's end drops them."""
    seen: list[str] = []

    class Sent:
        async def edit_text(self, text: str) -> None:
            seen.append(f"edit {text}")

        async def delete(self) -> None:
            seen.append("delete")

    class Bot:
        async def send_message(self, chat_id: int, text: str) -> Sent:
            seen.append(f"send {text}")
            return Sent()

        async def send_chat_action(self, chat_id: int, action: str) -> None:
            seen.append(action)

    async def scenario() -> None:
        status = StatusMessage(Bot(), CHAT, interval_s=3600, label="Rendering")  # type: ignore[arg-type]
        for step in range(1, 9):
            status.progress(step, 8)
        await asyncio.sleep(0)  # the reports reach the loop
        await status.close()

    run(scenario())
    assert seen == ["send Working on it…", "upload_photo", "delete"]

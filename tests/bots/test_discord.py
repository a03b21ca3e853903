"""The Discord bot end to end: the real discord.py client against the fake Discord over
real HTTP and websockets, with the tiny backend, a real store and the local render queue.
The bot is pointed at the fake the way a user would: its base URL setting."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import discord
import pytest
from PIL import Image

from chatface.bots.conversation import COMMANDS, TOO_FAST, ConversationCore
from chatface.bots.discord import DiscordBot, api_base, channel_ids, shards
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.queue import LocalRenderQueue
from chatface.errors import ConfigError
from chatface.storage import Store
from chatface.storage.models import Job
from tests.fakes.discord_server import DEFAULT_USER_ID, FakeDiscord, RecordedRequest

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO / "tests" / "data" / "faces" / "grace_hopper.jpg"
TINY = {
    "CHATFACE_ENGINE_BACKEND": "tiny",
    "CHATFACE_RENDER_ENCODE_STEPS": "1",
    "CHATFACE_RENDER_STEPS": "1",
}
OTHER_USER = 498765432109876543
WAIT_S = 60.0  # for answers that need the model: generous on a loaded machine


def run(coro: Coroutine[Any, Any, Any], timeout: float = 180) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


def buttons(request: RecordedRequest) -> list[str]:
    rows = (request.json or {}).get("components") or []
    return [c["custom_id"] for row in rows for c in row["components"]]


def result_buttons(user_id: int = DEFAULT_USER_ID) -> list[str]:
    return [f"cf:{name}:{user_id}" for name in ("undo", "redo", "original")]


def is_answer(request: RecordedRequest) -> bool:
    """A message the bot sent that is not a status message."""
    content = (request.json or {}).get("content") or ""
    return request.status == 200 and not content.startswith("Working…")


def make_engine(pm, monkeypatch: pytest.MonkeyPatch, **settings: str) -> Engine:  # type: ignore[no-untyped-def]
    """The tiny backend (``TINY``), with ``settings`` (CHATFACE_* variables) on top."""
    for name, value in {**TINY, **settings}.items():
        monkeypatch.setenv(name, value)
    return Engine(load_config(), pm)


@pytest.fixture
def engine(pm, monkeypatch: pytest.MonkeyPatch) -> Engine:  # type: ignore[no-untyped-def]
    return make_engine(pm, monkeypatch)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    # The bot sets discord.py's process-wide endpoints itself; put them back afterwards.
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    gateway = discord.gateway.DiscordWebSocket
    monkeypatch.setattr(gateway, "DEFAULT_GATEWAY", gateway.DEFAULT_GATEWAY)
    server = FakeDiscord()
    with server.serving():
        yield server


@contextlib.asynccontextmanager
async def bot_running(
    fake: FakeDiscord, engine: Engine, **options: Any
) -> AsyncIterator[DiscordBot]:
    store = Store.from_config(engine.config)
    queue = LocalRenderQueue.from_engine(engine)
    core = ConversationCore(engine, store, queue, "discord", "tiny")
    options.setdefault("max_bytes", engine.config["photos.max_bytes"])
    bot = DiscordBot(core, base_url=fake.url, **options)
    try:
        async with fake.running(bot):
            yield bot
    finally:
        await queue.close()
        core.close()
        store.close()


async def dm_answer(fake: FakeDiscord, text: str = "", *, user_id: int = DEFAULT_USER_ID,
                    attachments: tuple = ()) -> RecordedRequest:  # fmt: skip
    """Send a DM and wait for the bot's answer in that DM (status messages skipped)."""
    since = len(fake.requests)
    sent = await fake.user_sends_dm(text, user_id=user_id, attachments=attachments)
    path = f"/channels/{sent['channel_id']}/messages"
    return await fake.wait_for("POST", path, where=is_answer, since=since, timeout=WAIT_S)


async def slash(fake: FakeDiscord, name: str, options: dict | None = None, **kw: Any):
    """Run a slash command; its acknowledgement and its first followup."""
    interaction = await fake.user_runs_slash_command(name, options, **kw)
    ack = await fake.wait_for("POST", interaction.callback_path)
    followup = await fake.wait_for("POST", interaction.webhook_path, timeout=WAIT_S)
    return interaction, ack, followup


def test_slash_edit_defers_follows_up_with_the_image_and_undo_works(fake, engine) -> None:
    photo = PHOTO.read_bytes()

    async def scenario() -> None:
        async with bot_running(fake, engine):
            options = {"image": ("grace.jpg", photo, "image/jpeg"), "text": "make her smile"}
            interaction, ack, got = await slash(fake, "edit", options)
            assert (ack.json, ack.status) == ({"type": 5}, 200)  # deferred, "thinking"
            assert "face" in got.json["content"].lower() and got.files == ()
            edited = await fake.wait_for(
                "POST", interaction.webhook_path, since=got.index + 1, timeout=WAIT_S
            )
            (image,) = edited.files
            assert image.filename == "chatface.png" and size(image.data) == size(photo)
            assert buttons(edited) == result_buttons()

            _, _, original = await slash(fake, "original")
            message_id = edited.response["id"]
            click = await fake.user_clicks_button(message_id, f"cf:undo:{DEFAULT_USER_ID}")
            assert (await fake.wait_for("POST", click.callback_path)).json == {"type": 5}
            undone = await fake.wait_for("POST", click.webhook_path, timeout=WAIT_S)
            assert pixels(undone.files[0].data) == pixels(original.files[0].data)
            assert pixels(undone.files[0].data) != pixels(image.data)
            click = await fake.user_clicks_button(message_id, f"cf:redo:{DEFAULT_USER_ID}")
            redone = await fake.wait_for("POST", click.webhook_path, timeout=WAIT_S)
            assert pixels(redone.files[0].data) == pixels(image.data)

    run(scenario())
    assert fake.unknown_requests == []
    registered = {c["name"]: c for c in fake.commands()}
    assert set(registered) == {"edit"} | {c.name for c in COMMANDS if c.name != "start"}
    edit = registered["edit"]
    assert [(o["name"], o["type"], o.get("required", False)) for o in edit["options"]] == [
        ("text", 3, False), ("image", 11, False)]  # fmt: skip
    zh = {c.name: c.description_zh for c in COMMANDS}
    assert registered["undo"]["description_localizations"]["zh-CN"] == zh["undo"]


def test_a_dm_photo_then_a_text_edit(fake, engine) -> None:
    photo = PHOTO.read_bytes()

    async def scenario() -> None:
        async with bot_running(fake, engine):
            got = await dm_answer(fake, attachments=[("me.jpg", photo, "image/jpeg")])
            assert "face" in got.json["content"].lower() and got.files == ()
            edited = await dm_answer(fake, "make her smile")
            assert size(edited.files[0].data) == size(photo)
            assert buttons(edited) == result_buttons()
            assert edited.json.get("message_reference") is None  # no quote needed in a DM
            # Photo and text in one message: the photo first, then the edit.
            since = len(fake.requests)
            await fake.user_sends_dm("older", attachments=[("me.jpg", photo, "image/jpeg")])
            dm = fake.dm_channel_id()
            path = f"/channels/{dm}/messages"
            first = await fake.wait_for("POST", path, where=is_answer, since=since, timeout=WAIT_S)
            second = await fake.wait_for("POST", path, where=is_answer, since=first.index + 1,
                                         timeout=WAIT_S)  # fmt: skip
            assert first.files == () and second.files[0].filename == "chatface.png"

    run(scenario())
    texts = [m["content"] for m in fake.messages_in(fake.dm_channel_id() or 0)]
    assert not any(t.startswith("Working…") for t in texts)  # status messages are removed


def test_plain_messages_in_a_configured_channel_only(fake, engine) -> None:
    async def scenario() -> None:
        async with bot_running(fake, engine, channels=frozenset({fake.world.channel_id})):
            asked = await fake.user_sends_channel_message("help")
            answer = await fake.wait_for("POST", f"/channels/{fake.world.channel_id}/messages")
            assert answer.json["message_reference"]["message_id"] == int(asked["id"])
            assert "undo" in answer.json["content"].lower()
        identify = next(f for f in fake.gateway_frames if f.op == 2)
        assert identify.data["intents"] & discord.Intents(message_content=True).value

    run(scenario())


def test_commands_and_forget_with_a_confirmation(fake, engine) -> None:
    async def scenario() -> None:
        async with bot_running(fake, engine):
            await dm_answer(fake, attachments=[("me.jpg", PHOTO.read_bytes(), "image/jpeg")])
            # The face sent in the DM is the DM's: /edit there needs no photo again.
            _, _, edited = await slash(fake, "edit", {"text": "make her smile"}, in_dm=True)
            assert edited.files[0].filename == "chatface.png"
            _, _, attributes = await slash(fake, "attributes")
            assert "smile" in attributes.json["content"]
            _, _, status = await slash(fake, "status")
            assert status.json["content"]
            _, ack, question = await slash(fake, "forget")
            assert ack.json == {"type": 5, "data": {"flags": 64}}  # only the asker sees it
            yes, no = f"cf:forget:yes:{DEFAULT_USER_ID}", f"cf:forget:no:{DEFAULT_USER_ID}"
            assert buttons(question) == [yes, no]
            message_id = question.response["id"]

            other = await fake.user_clicks_button(message_id, yes, user_id=OTHER_USER)
            refused = await fake.wait_for("POST", other.callback_path)
            assert refused.json["data"]["flags"] == 64 and "only" in refused.json["data"][
                "content"].lower()  # fmt: skip
            click = await fake.user_clicks_button(message_id, yes)
            assert (await fake.wait_for("POST", click.callback_path)).json == {"type": 6}
            done = await fake.wait_for("PATCH", click.webhook_path + "/messages/@original")
            assert done.json["components"] == [] and done.json["content"]
            _, _, after = await slash(fake, "undo", in_dm=True)
            assert "photo" in after.json["content"].lower()  # nothing of the user is left

    run(scenario())


def test_bad_inputs_get_clear_replies_and_the_bot_keeps_serving(fake, engine, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    photo = PHOTO.read_bytes()
    long_text = "make her smile " * 667  # 10,005 characters

    async def scenario() -> None:
        async with bot_running(fake, engine, max_bytes=len(photo) - 1):
            text = await dm_answer(fake, attachments=[("notes.txt", b"hello", "text/plain")])
            assert "not a photo" in text.json["content"]
            big = await dm_answer(fake, attachments=[("big.jpg", photo, "image/jpeg")])
            assert "too large" in big.json["content"]
            assert not [r for r in fake.requests if r.path.endswith("/big.jpg")]  # not fetched
            fake_jpeg = await dm_answer(
                fake, attachments=[("x.jpg", b"\xff\xd8 junk", "image/jpeg")]
            )
            assert "image" in fake_jpeg.json["content"].lower()
            cut = await dm_answer(fake, attachments=[("cut.jpg", photo[: len(photo) // 2])])
            assert cut.json["content"] and cut.files == ()
            _, _, empty = await slash(fake, "edit")  # neither a photo nor a text
            assert (
                empty.json["content"] == "Send me a photo with a face, or tell me what to change."
            )
            long = await dm_answer(fake, long_text)
            assert 0 < len(long.json["content"]) <= 2000
            fine = await dm_answer(fake, "help")
            assert "undo" in fine.json["content"].lower()

    run(scenario())
    assert fake.world.token not in caplog.text
    assert "make her smile" not in caplog.text and "hello" not in caplog.text


def test_a_photo_gone_before_its_turn_gets_a_clear_reply(fake, engine) -> None:
    """A photo sent while the chat's previous photo is still being read is downloaded
    only when its turn comes; if it is gone by then, the user is told."""
    photo = PHOTO.read_bytes()
    started, release = threading.Event(), threading.Event()
    real = engine.open_face

    def gated(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(WAIT_S), "the test never let the first photo be read"
        return real(*args, **kwargs)

    engine.open_face = gated  # type: ignore[method-assign]

    async def scenario() -> list[str]:
        async with bot_running(fake, engine):
            since = len(fake.requests)
            await fake.user_sends_dm(attachments=[("first.jpg", photo, "image/jpeg")])
            assert await asyncio.to_thread(started.wait, WAIT_S)
            second = await fake.user_sends_dm(attachments=[("second.jpg", photo, "image/jpeg")])
            fake.remove_file(second["attachments"][0]["url"])
            release.set()
            path = f"/channels/{fake.dm_channel_id()}/messages"
            first = await fake.wait_for("POST", path, where=is_answer, since=since, timeout=WAIT_S)
            then = await fake.wait_for("POST", path, where=is_answer, since=first.index + 1,
                                       timeout=WAIT_S)  # fmt: skip
            return [first.json["content"], then.json["content"]]

    first, then = run(scenario())
    assert first.startswith("Got the face")
    assert then == "I could not download that file; please send it again."
    assert [r.status for r in fake.requests if r.path.endswith("/second.jpg")] == [404]


def test_a_flood_gets_a_polite_limit_and_others_are_still_served(fake, engine) -> None:
    limit = load_config()["bots.rate_limit_per_minute"]

    def answers(since: int, path: str) -> list[RecordedRequest]:
        return [r for r in fake.requests[since:] if r.method == "POST" and r.path == path]

    async def scenario() -> tuple[int, str]:
        async with bot_running(fake, engine):
            since = len(fake.requests)
            for n in range(50):
                await fake.user_sends_dm(f"hello {n}")
            path = f"/channels/{fake.dm_channel_id()}/messages"
            # The allowed messages and one polite warning; after it the bot stays quiet.
            enough = lambda r: len(answers(since, path)) > limit  # noqa: E731
            await fake.wait_for("POST", path, where=enough, since=since, timeout=WAIT_S)
            other = await dm_answer(fake, "help", user_id=OTHER_USER)
            assert "undo" in other.json["content"].lower()
        return since, path

    since, path = run(scenario())
    texts = [r.json["content"] for r in answers(since, path)]
    assert len(texts) == limit + 1
    assert texts.count(TOO_FAST) == 1


def no_face_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (120, 160, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_flood_of_photos_is_limited_before_any_download(fake, pm, monkeypatch) -> None:
    engine = make_engine(pm, monkeypatch, CHATFACE_BOTS_RATE_LIMIT_PER_MINUTE="3")
    photo = no_face_png()  # quick to refuse: the test is about what is downloaded

    def downloads() -> list[RecordedRequest]:
        return [r for r in fake.requests if r.method == "GET" and r.path.startswith("/attach")]

    async def scenario() -> list[str]:
        async with bot_running(fake, engine):
            since = len(fake.requests)
            for _ in range(50):
                await fake.user_sends_dm(attachments=[("me.png", photo, "image/png")])
            path = f"/channels/{fake.dm_channel_id()}/messages"
            answers = lambda: [r for r in fake.requests[since:]  # noqa: E731
                               if r.method == "POST" and r.path == path]  # fmt: skip
            await fake.wait_for("POST", path, where=lambda r: len(answers()) > 3, since=since,
                                timeout=WAIT_S)  # fmt: skip
            other = await dm_answer(fake, "help", user_id=OTHER_USER)  # others are still served
            assert "undo" in other.json["content"].lower()
            return [r.json["content"] for r in answers()]

    texts = run(scenario())
    assert texts.count(TOO_FAST) == 1 and len(texts) == 4
    assert all(t.startswith("No face found") for t in texts if t != TOO_FAST), texts
    assert len(downloads()) == 3  # the refused photos were never fetched


def test_a_text_sent_right_after_a_photo_is_planned_on_its_face(fake, engine) -> None:
    """The photo is downloaded in the chat's turn: the text sent right after it waits for
    its face instead of finding none."""
    photo = PHOTO.read_bytes()

    async def scenario() -> tuple[RecordedRequest, RecordedRequest]:
        async with bot_running(fake, engine):
            since = len(fake.requests)
            await fake.user_sends_dm(attachments=[("me.jpg", photo, "image/jpeg")])
            await fake.user_sends_dm("make her smile")
            path = f"/channels/{fake.dm_channel_id()}/messages"
            first = await fake.wait_for("POST", path, where=is_answer, since=since, timeout=WAIT_S)
            second = await fake.wait_for("POST", path, where=is_answer, since=first.index + 1,
                                         timeout=WAIT_S)  # fmt: skip
            return first, second

    first, second = run(scenario())
    assert first.json["content"].startswith("Got the face")
    assert second.files and size(second.files[0].data) == size(photo)


def test_result_buttons_in_a_channel_belong_to_whoever_got_the_result(fake, engine) -> None:
    """A button acts on the clicker's own session: someone else clicking Undo under your
    result is told so, only to them, and nothing else happens. Buttons sent before they
    named their owner still act for whoever clicks them."""
    photo = PHOTO.read_bytes()
    channel = fake.world.channel_id
    path = f"/channels/{channel}/messages"

    async def scenario() -> None:
        async with bot_running(fake, engine, channels=frozenset({channel})):
            since = len(fake.requests)
            await fake.user_sends_channel_message(
                "make her smile", attachments=[("me.jpg", photo, "image/jpeg")]
            )
            has_image = lambda r: bool(r.files)  # noqa: E731
            smile = await fake.wait_for("POST", path, where=has_image, since=since,
                                        timeout=WAIT_S)  # fmt: skip
            assert buttons(smile) == result_buttons()
            message_id = smile.response["id"]

            other = await fake.user_clicks_button(message_id, f"cf:undo:{DEFAULT_USER_ID}",
                                                  user_id=OTHER_USER)  # fmt: skip
            refused = await fake.wait_for("POST", other.callback_path)
            assert refused.json["type"] == 4 and refused.json["data"]["flags"] == 64
            assert refused.json["data"]["content"].startswith(
                f"These buttons belong to <@{DEFAULT_USER_ID}>'s photo"
            )
            click = await fake.user_clicks_button(message_id, f"cf:undo:{DEFAULT_USER_ID}")
            undone = await fake.wait_for("POST", click.webhook_path, timeout=WAIT_S)
            assert pixels(undone.files[0].data) == pixels(photo)

            old = fake.message(message_id)["components"]
            for button in old[0]["components"]:
                button["custom_id"] = button["custom_id"].rsplit(":", 1)[0]
            fake.replace_components(message_id, old)
            click = await fake.user_clicks_button(message_id, "cf:redo")
            redone = await fake.wait_for("POST", click.webhook_path, timeout=WAIT_S)
            assert pixels(redone.files[0].data) == pixels(smile.files[0].data)
            # The other user's click did nothing else: no message in the channel for them.
            assert [r for r in fake.requests[smile.index + 1 :] if r.path == path] == []

    run(scenario())
    assert fake.unknown_requests == []


def test_a_stop_lets_the_edit_being_rendered_finish(fake, pm, monkeypatch) -> None:
    """close() stops taking events and waits (bounded) for those being answered before it
    disconnects: an edit still rendering when the bot stops is sent."""
    engine = make_engine(pm, monkeypatch, CHATFACE_RENDER_STEPS="20")

    async def scenario() -> str:
        async with bot_running(fake, engine):
            await dm_answer(fake, attachments=[("me.jpg", PHOTO.read_bytes(), "image/jpeg")])
            path = f"/channels/{fake.dm_channel_id()}/messages"
            since = len(fake.requests)
            await fake.user_sends_dm("make her smile")
            working = lambda r: r.json["content"].startswith("Working…")  # noqa: E731
            await fake.wait_for("POST", path, where=working, since=since, timeout=WAIT_S)
        return path

    path = run(scenario())
    (result,) = [r for r in fake.requests if r.path == path and r.files]
    assert result.status == 200 and buttons(result) == result_buttons()


def test_a_stop_waits_for_the_recovery(fake, engine) -> None:
    """The jobs the last run left are carried out at the start; a stop meanwhile waits
    for them (bounded) instead of dropping the replies of jobs already done."""
    store = Store.from_config(engine.config)
    left = store.files_dir / "incoming" / "left.bin"
    left.parent.mkdir(parents=True)
    left.write_bytes(PHOTO.read_bytes())
    chat = fake.world.channel_id
    store.write_turn("discord", str(DEFAULT_USER_ID), str(chat), messages=[("user", "[photo]")],
                     job=Job(kind="photo", photo_path="incoming/left.bin"))  # fmt: skip
    store.close()
    started, release = threading.Event(), threading.Event()
    real = engine.open_face

    def gated(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(WAIT_S), "the test never let the recovery go on"
        return real(*args, **kwargs)

    engine.open_face = gated  # type: ignore[method-assign]

    async def scenario() -> None:
        async with bot_running(fake, engine) as bot:
            assert await asyncio.to_thread(started.wait, WAIT_S)
            closing = asyncio.create_task(bot.close())
            await asyncio.sleep(0)  # close() has begun
            release.set()
            await closing

    run(scenario())
    (owed,) = [r for r in fake.requests if r.path == f"/channels/{chat}/messages"]
    assert owed.json["content"].startswith("Got the face")


def test_two_users_edit_at_once(fake, engine) -> None:
    photo = PHOTO.read_bytes()

    async def user(user_id: int) -> RecordedRequest:
        await dm_answer(fake, user_id=user_id, attachments=[("me.jpg", photo, "image/jpeg")])
        return await dm_answer(fake, "make her smile", user_id=user_id)

    async def scenario() -> None:
        async with bot_running(fake, engine):
            results = await asyncio.gather(user(DEFAULT_USER_ID), user(OTHER_USER))
        assert all(size(r.files[0].data) == size(photo) for r in results)
        assert results[0].path != results[1].path  # each in its own DM

    run(scenario())


def test_settings_name_channels_and_the_api_base() -> None:
    assert channel_ids(" 12, 34 ,", [56]) == {12, 34, 56}
    with pytest.raises(ConfigError, match="bots.discord_channels"):
        channel_ids("12,general")
    assert api_base("http://127.0.0.1:5/") == "http://127.0.0.1:5/api/v10"
    assert api_base("https://example.org/api/v10") == "https://example.org/api/v10"


@pytest.mark.parametrize(
    ("settings", "shard"),
    [({}, [0, 1]), ({"COUNT": "3", "IDS": "2"}, [2, 3]), ({"COUNT": "2", "IDS": "0"}, [0, 2])],
)
def test_the_bot_identifies_with_the_shards_the_settings_ask_for(
    fake, pm, monkeypatch, settings, shard
) -> None:
    """Default: the count Discord recommends (GET /gateway/bot; the fake says 1). The fake
    serves one session at a time, so each case runs one shard."""
    env = {f"CHATFACE_BOTS_DISCORD_SHARD_{k}": v for k, v in settings.items()}
    engine = make_engine(pm, monkeypatch, **env)
    count, ids = shards(
        engine.config["bots.discord_shard_count"], engine.config["bots.discord_shard_ids"]
    )

    async def scenario() -> None:
        async with bot_running(fake, engine, shard_count=count, shard_ids=ids):
            identify = await fake.wait_for_gateway(2)
            assert identify.data["shard"] == shard
            await slash(fake, "help")  # and it answers

    run(scenario())
    assert [f.data["shard"] for f in fake.gateway_frames if f.op == 2] == [shard]


def test_shard_settings_are_checked() -> None:
    assert shards(0, "") == (None, None)
    assert shards(4, " 3, 1,1 ") == (4, [1, 3])
    for count, ids, message in [
        (2, "2", r"below bots.discord_shard_count \(2\); got 2"),
        (0, "1", "needs bots.discord_shard_count"),
        (-1, "", "0 or more"),
        (2, "0,one", "comma-separated numbers"),
    ]:
        with pytest.raises(ConfigError, match=message):
            shards(count, ids)


def test_serve_discord_with_a_shard_beyond_the_count_says_so() -> None:
    env = {**os.environ, "DISCORD_BOT_TOKEN": "t", "CHATFACE_BOTS_DISCORD_SHARD_COUNT": "2",
           "CHATFACE_BOTS_DISCORD_SHARD_IDS": "0,2"}  # fmt: skip
    process = _serve(env)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "bots.discord_shard_ids must be below bots.discord_shard_count (2); got 2" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def _serve(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chatface", "serve", "discord", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


def test_serve_discord_survives_kill_9_mid_render_and_stops_cleanly_on_sigterm(fake) -> None:
    """`chatface serve discord` as a user runs it: killed (-9) while rendering an edit,
    restarted, it renders that edit and sends it; SIGTERM then stops it cleanly."""
    env = {**os.environ, **TINY, "DISCORD_BOT_TOKEN": fake.world.token}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    slow = {**env, "CHATFACE_RENDER_STEPS": "500"}  # still rendering when it is killed
    processes = [_serve(slow, "--base-url", fake.url)]

    async def scenario() -> None:
        await fake.wait_until_connected(timeout=WAIT_S)
        got = await dm_answer(fake, attachments=[("me.jpg", PHOTO.read_bytes(), "image/jpeg")])
        assert "face" in got.json["content"].lower()
        path = f"/channels/{fake.dm_channel_id()}/messages"
        since = len(fake.requests)
        await fake.user_sends_dm("make her smile")
        working = lambda r: r.json["content"].startswith("Working…")  # noqa: E731
        await fake.wait_for("POST", path, where=working, since=since, timeout=WAIT_S)
        processes[0].kill()
        await fake.wait_until_disconnected(timeout=10)

        processes.append(_serve(env, "--base-url", fake.url))
        has_image = lambda r: bool(r.files)  # noqa: E731
        owed = await fake.wait_for("POST", path, where=has_image, since=since, timeout=WAIT_S)
        assert owed.files[0].filename == "chatface.png"
        assert buttons(owed) == result_buttons()
        edited = await dm_answer(fake, "add glasses")
        assert edited.files[0].filename == "chatface.png"
        processes[1].send_signal(signal.SIGTERM)
        await fake.wait_until_disconnected(timeout=10)

    try:
        run(scenario())
        out, err = processes[1].communicate(timeout=20)
    finally:
        for process in processes:
            process.kill()
            process.communicate()
    assert processes[1].returncode == 0, err
    assert "answers slash commands and DMs" in out + err
    assert fake.world.token not in out + err and "Traceback" not in err


def test_serve_discord_without_a_token_says_where_to_put_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_BOT_TOKEN"}
    process = _serve(env)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "DISCORD_BOT_TOKEN" in err and "chatface keys set discord" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1

"""The real discord.py against the fake Discord: a small bot with a slash command that
defers, downloads the attachment and follows up with an edited image and buttons; a
button that updates the message; a DM handler that answers an image with an image."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands
from PIL import Image, ImageOps

from tests.fakes import discord_gateway as gw
from tests.fakes.discord_interactions import Interactions
from tests.fakes.discord_server import DEFAULT_USER_ID, FakeDiscord
from tests.fakes.discord_world import DiscordError, DiscordWorld, Upload


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def png(size: tuple[int, int] = (12, 8)) -> bytes:
    image = Image.new("RGB", size)
    image.putdata([(x * 20, y * 30, 99) for y in range(size[1]) for x in range(size[0])])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def inverted(data: bytes) -> bytes:
    out = io.BytesIO()
    ImageOps.invert(Image.open(io.BytesIO(data)).convert("RGB")).save(out, "PNG")
    return out.getvalue()


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


class EditView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Undo", custom_id="chatface:undo")
    async def undo(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content="Undone.", view=None)  # type 7

    @discord.ui.button(label="Stronger", custom_id="chatface:stronger")
    async def stronger(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()  # type 6, then edit the clicked message
        assert interaction.message is not None
        image = await interaction.message.attachments[0].read()
        file = discord.File(io.BytesIO(inverted(image)), "stronger.png")
        await interaction.edit_original_response(content="Stronger.", attachments=[file])


class Bot(discord.Client):
    """What a chatface bot does, in miniature; it notes what it saw and what failed."""

    def __init__(self, fake: FakeDiscord, intents: discord.Intents | None = None) -> None:
        super().__init__(intents=intents or discord.Intents.default())
        self.fake = fake
        self.tree = app_commands.CommandTree(self)
        self.seen: list[discord.Message] = []  # discord.py updates these on MESSAGE_UPDATE
        self.heard: list[tuple[bool, str]] = []  # (from a bot, content) as they arrived
        self.errors: list[Exception] = []
        self.synced: list[app_commands.AppCommand] = []

        @self.tree.command(description="Edit a face photo")
        @app_commands.describe(image="the photo", text="what to change")
        async def edit(interaction: discord.Interaction, image: discord.Attachment, text: str):
            try:
                await interaction.response.defer(thinking=True)
            except discord.HTTPException as exc:
                self.errors.append(exc)
                return
            edited = inverted(await image.read())
            file = discord.File(io.BytesIO(edited), "edited.png")
            await interaction.followup.send(f"Edited: {text}", file=file, view=EditView())

    async def setup_hook(self) -> None:
        self.synced = await self.tree.sync()
        guild = discord.Object(self.fake.world.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)
        self.add_view(EditView())  # buttons keep working on messages from before a restart

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)
        self.heard.append((message.author.bot, message.content))
        if message.author == self.user:
            return
        if not isinstance(message.channel, discord.DMChannel):
            return
        if not message.attachments:
            await message.channel.send("Send me a photo to edit.")
            return
        edited = discord.File(io.BytesIO(inverted(await message.attachments[0].read())), "dm.png")
        await message.channel.send(f"Edited: {message.content}", file=edited, view=EditView())


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    server = FakeDiscord()
    with server.serving(), server.pointing():
        yield server


def test_slash_command_defers_follows_up_with_the_image_and_buttons_work(fake: FakeDiscord):
    photo = png()

    async def scenario() -> None:
        bot = Bot(fake)
        async with fake.running(bot):
            interaction = await fake.user_runs_slash_command(
                "edit", {"image": ("face.png", photo, "image/png"), "text": "add a smile"}
            )
            deferred = await fake.wait_for("POST", interaction.callback_path)
            followup = await fake.wait_for("POST", interaction.webhook_path)
            assert (deferred.json, deferred.status) == ({"type": 5}, 200)
            download = await fake.wait_for("GET", "/ephemeral-attachments/*/face.png")
            assert download.status == 200 and download.authorized is None

            (upload,) = followup.files
            assert (upload.filename, upload.field) == ("edited.png", "files[0]")
            assert pixels(upload.data) == pixels(inverted(photo))
            assert followup.json["content"] == "Edited: add a smile"
            assert followup.query["wait"] == "1" and followup.status == 200
            buttons = [c for row in followup.json["components"] for c in row["components"]]
            assert [(b["type"], b["custom_id"]) for b in buttons] == [
                (2, "chatface:undo"), (2, "chatface:stronger")]  # fmt: skip

            # After a deferred answer the first followup fills in the "thinking" message.
            (message,) = fake.messages_in(fake.world.channel_id)
            assert followup.response["id"] == message["id"]
            assert message["flags"] == 0 and message["content"] == "Edited: add a smile"
            assert message["attachments"][0]["content_type"] == "image/png"
            assert (message["attachments"][0]["width"], message["type"]) == (12, 20)

            click = await fake.user_clicks_button(message["id"], "chatface:stronger")
            assert (await fake.wait_for("POST", click.callback_path)).json == {"type": 6}
            edit = await fake.wait_for("PATCH", click.webhook_path + "/messages/@original")
            assert edit.files[0].filename == "stronger.png"
            assert pixels(edit.files[0].data) == pixels(photo)  # inverted twice
            assert fake.message(message["id"])["content"] == "Stronger."

            undo = await fake.user_clicks_button(message["id"], "chatface:undo")
            answer = await fake.wait_for("POST", undo.callback_path)
            assert answer.json["type"] == 7 and answer.json["data"]["components"] == []
            assert fake.message(message["id"])["content"] == "Undone."
            with pytest.raises(LookupError, match="no button"):
                await fake.user_clicks_button(message["id"], "chatface:undo")
        assert bot.errors == []

    run(scenario())
    assert fake.unknown_requests == []


def test_tree_sync_registers_the_commands_globally_and_in_the_guild(fake: FakeDiscord):
    bot = Bot(fake)

    async def scenario() -> None:
        async with fake.running(bot):
            pass

    run(scenario())
    app = fake.world.application_id
    puts = [r for r in fake.requests if r.method == "PUT"]
    assert [r.path for r in puts] == [
        f"/applications/{app}/commands",
        f"/applications/{app}/guilds/{fake.world.guild_id}/commands",
    ]
    assert all(r.authorized and r.status == 200 for r in puts)
    (command,) = fake.commands()
    assert (command["name"], command["description"]) == ("edit", "Edit a face photo")
    assert [(o["name"], o["type"], o["required"]) for o in command["options"]] == [
        ("image", 11, True), ("text", 3, True)]  # fmt: skip
    assert [c.name for c in bot.synced] == ["edit"] and bot.synced[0].id == int(command["id"])
    assert [c["name"] for c in fake.commands(fake.world.guild_id)] == ["edit"]


def test_dm_with_an_image_gets_an_edited_image_and_buttons_back(fake: FakeDiscord):
    photo = png((5, 7))

    async def scenario() -> Bot:
        bot = Bot(fake)
        async with fake.running(bot):
            sent = await fake.user_sends_dm("older please", attachments=[("me.png", photo)])
            dm = fake.dm_channel_id(DEFAULT_USER_ID)
            assert sent["channel_id"] == str(dm) and "guild_id" not in sent
            reply = await fake.wait_for("POST", f"/channels/{dm}/messages")
            message_id = reply.response["id"]
            click = await fake.user_clicks_button(message_id, "chatface:undo")
            assert (await fake.wait_for("POST", click.callback_path)).json["type"] == 7
            await fake.user_sends_dm("no image this time")
            ask = await fake.wait_for("POST", f"/channels/{dm}/messages", since=reply.index + 1)
            assert ask.json["content"] == "Send me a photo to edit." and ask.files == ()
        assert reply.json["content"] == "Edited: older please" and reply.status == 200
        buttons = reply.json["components"][0]["components"]
        assert [b["custom_id"] for b in buttons] == ["chatface:undo", "chatface:stronger"]
        assert pixels(reply.files[0].data) == pixels(inverted(photo))
        assert reply.files[0].content_type == "application/octet-stream"  # discord.py's choice
        assert fake.message(message_id)["content"] == "Undone."
        return bot

    bot = run(scenario())
    # The bot gets its own messages back on the gateway, and their edits, as from Discord.
    assert bot.heard[:3] == [
        (False, "older please"),
        (True, "Edited: older please"),
        (False, "no image this time"),
    ]
    assert bot.seen[1].content == "Undone." and bot.seen[1].components == []
    assert isinstance(bot.seen[0].channel, discord.DMChannel)
    assert bot.seen[0].attachments[0].content_type == "image/png"


def test_a_slash_command_in_a_dm(fake: FakeDiscord):
    async def scenario() -> None:
        async with fake.running(Bot(fake)):
            interaction = await fake.user_runs_slash_command(
                "edit", {"image": ("a.png", png()), "text": "dm"}, in_dm=True
            )
            await fake.wait_for("POST", interaction.webhook_path)
        assert interaction.guild_id is None
        (message,) = fake.messages_in(fake.dm_channel_id(DEFAULT_USER_ID) or 0)
        assert message["content"] == "Edited: dm" and "guild_id" not in message

    run(scenario())


def test_the_bot_opens_a_dm_edits_and_deletes_its_message(fake: FakeDiscord):
    someone = 498765432109876543

    async def scenario() -> None:
        bot = Bot(fake)
        async with fake.running(bot):
            user = await bot.fetch_user(someone)
            sent = await user.send("Your photo is ready.", file=discord.File(io.BytesIO(png())))
            await sent.edit(content="Your photo is ready (edited).")
            channel = fake.dm_channel_id(someone)
            assert fake.messages_in(channel or 0)[0]["content"] == "Your photo is ready (edited)."
            await sent.delete()
            assert fake.messages_in(channel or 0) == []

    run(scenario())
    calls = [(r.method, r.path.replace(str(someone), "U"), r.status) for r in fake.requests[-5:]]
    dm = fake.dm_channel_id(someone)
    assert [(m, p.replace(str(dm), "DM").split("/messages/")[0], s) for m, p, s in calls] == [
        ("GET", "/users/U", 200),
        ("POST", "/users/@me/channels", 200),
        ("POST", "/channels/DM/messages", 200),
        ("PATCH", "/channels/DM", 200),
        ("DELETE", "/channels/DM", 204),
    ]


def test_wrong_token_raises_login_failure(fake: FakeDiscord):
    async def scenario() -> None:
        async with fake.running(Bot(fake), token="not-the-token"):
            pass

    with pytest.raises(discord.LoginFailure):
        run(scenario())
    (me,) = fake.requests
    assert (me.path, me.status, me.authorized) == ("/users/@me", 401, False)
    assert fake.gateway_connections == []


def test_the_client_connects_with_json_and_zlib_and_closes_fast(fake: FakeDiscord):
    bot = Bot(fake, intents=discord.Intents.default())

    async def scenario() -> float:
        async with fake.running(bot):
            assert bot.user is not None and bot.user.id == fake.world.bot_id
            started = time.monotonic()
            await bot.close()
            await fake.wait_until_disconnected(timeout=1.0)
            return time.monotonic() - started

    assert run(scenario()) < 1.0
    (url,) = fake.gateway_connections
    assert url == "/gateway?v=10&encoding=json&compress=zlib-stream"
    identify = next(f for f in fake.gateway_frames if f.op == gw.IDENTIFY)
    assert identify.data["token"] == "<redacted>"
    assert identify.data["intents"] == discord.Intents.default().value
    assert not fake.gateway.connected and bot.is_closed()


def test_reconnect_resumes_and_replays_what_the_bot_missed(fake: FakeDiscord):
    async def scenario() -> Bot:
        bot = Bot(fake)
        async with fake.running(bot):
            await fake.ask_to_reconnect()
            # Sent while the bot reconnects: it must arrive after the RESUME.
            await fake.user_sends_dm("hello again", attachments=[("x.png", png())])
            resume = await fake.wait_for_gateway(gw.RESUME)
            await fake.wait_for("POST", "/channels/*/messages")
        assert resume.data["session_id"] == fake.gateway.session.id  # type: ignore[union-attr]
        return bot

    bot = run(scenario())
    assert fake.gateway_connections[1].startswith("/gateway-resume?v=10")
    assert [f.op for f in fake.gateway_frames].count(gw.IDENTIFY) == 1
    assert bot.heard[0] == (False, "hello again")


def test_intents_decide_what_the_bot_gets(fake: FakeDiscord):
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = True

    async def scenario() -> Bot:
        bot = Bot(fake, intents=intents)
        async with fake.running(bot):
            await fake.user_sends_dm("not delivered")
            await fake.user_sends_channel_message("hidden text")
            mention = f"<@{fake.world.bot_id}> visible"
            await fake.user_sends_channel_message(mention, mentions_bot=True)
            await fake.user_runs_slash_command("edit", {"image": ("a.png", png()), "text": "t"})
            await fake.wait_for("POST", "/webhooks/*")
        return bot

    bot = run(scenario())
    assert fake.undelivered[0] == ("MESSAGE_CREATE", "the bot did not ask for the "
                                   "DIRECT_MESSAGES intent")  # fmt: skip
    assert [text for _, text in bot.heard][:2] == ["", f"<@{fake.world.bot_id}> visible"]


def test_an_answer_after_the_deadline_is_refused_like_discord_does():
    fake = FakeDiscord(ack_deadline_s=0.0)
    with fake.serving(), fake.pointing():

        async def scenario() -> Bot:
            bot = Bot(fake)
            async with fake.running(bot):
                interaction = await fake.user_runs_slash_command(
                    "edit", {"image": ("a.png", png()), "text": "t"}
                )
                late = await fake.wait_for("POST", interaction.callback_path)
                assert late.status == 404
            return bot

        bot = run(scenario())
    (error,) = bot.errors
    assert isinstance(error, discord.NotFound) and error.code == 10062


def test_one_base_url_setting_is_enough(fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch):
    """What the product must do with ``bots.discord_base_url``: Route.BASE, then the
    gateway URL that GET /gateway/bot names (a plain Client never asks for it)."""
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
    dead = yarl.URL("ws://127.0.0.1:9/")  # where a forgotten step goes, not the internet
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", dead)

    class ConfiguredBot(Bot):
        async def setup_hook(self) -> None:
            _, url, _ = await self.http.get_bot_gateway()
            gateway = yarl.URL(url)
            monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", gateway)

    async def scenario() -> None:
        async with fake.running(ConfiguredBot(fake)):
            pass

    run(scenario())
    assert [r.path for r in fake.requests][-1] == "/gateway/bot"
    assert fake.gateway_connections[0].startswith("/gateway?v=10")


def test_unknown_routes_answer_404_and_are_recorded(fake: FakeDiscord):
    async def scenario() -> None:
        bot = Bot(fake)
        async with fake.running(bot):
            with pytest.raises(discord.NotFound):
                await bot.fetch_guild(fake.world.guild_id)

    run(scenario())
    (unknown,) = fake.unknown_requests
    assert (unknown.method, unknown.path, unknown.status) == (
        "GET", f"/guilds/{fake.world.guild_id}", 404)  # fmt: skip


def test_the_world_refuses_what_discord_refuses():
    world = DiscordWorld()
    desk = Interactions(world)
    world.register_commands(None, [{"name": "edit", "description": "e", "options": [
        {"type": 3, "name": "text", "description": "t", "required": True}]}])  # fmt: skip
    with pytest.raises(ValueError, match="needs option"):
        desk.slash_command("edit", {}, DEFAULT_USER_ID, world.channel_id)
    with pytest.raises(LookupError, match="no slash command /undo"):
        desk.slash_command("undo", {}, DEFAULT_USER_ID, world.channel_id)
    record, _ = desk.slash_command("edit", {"text": "x"}, DEFAULT_USER_ID, world.channel_id)
    codes = []
    for attempt in (
        lambda: desk.followup(record, {"content": "too early"}, []),
        lambda: desk.respond(record.id, record.token, {"type": 7}, []),
        lambda: world.post_message(world.channel_id, {"content": ""}, []),
    ):
        with pytest.raises(DiscordError) as caught:
            attempt()
        codes.append(caught.value.code)
    desk.respond(record.id, record.token, {"type": 4, "data": {"content": "hi"}}, [])
    with pytest.raises(DiscordError) as twice:
        desk.respond(record.id, record.token, {"type": 5}, [])
    assert codes + [twice.value.code] == [10015, 50035, 50006, 40060]
    upload = Upload("a.png", png(), field="files[0]")
    message = world.post_message(world.channel_id, {"attachments": [{"id": 0}]}, [upload])
    assert message["attachments"][0]["content_type"] == "image/png"


def test_a_commands_bot_with_message_content_answers_a_prefix_command(fake: FakeDiscord):
    intents = discord.Intents.default()
    intents.message_content = True
    bot = commands.Bot(command_prefix="!", intents=intents)

    @bot.command()
    async def ping(ctx: commands.Context) -> None:
        await ctx.reply("pong")

    async def scenario() -> None:
        async with fake.running(bot):
            asked = await fake.user_sends_channel_message("!ping")
            reply = await fake.wait_for("POST", f"/channels/{fake.world.channel_id}/messages")
        assert reply.json["message_reference"]["message_id"] == int(asked["id"])
        assert reply.response["type"] == 19 and reply.response["content"] == "pong"

    run(scenario())

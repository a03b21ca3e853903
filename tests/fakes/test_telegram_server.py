"""The real python-telegram-bot against the fake Bot API (real HTTP on 127.0.0.1).

These tests prove the fake is good enough to test a bot with: PTB's own Application,
Updater and Bot run unchanged, pointed at the fake by the two base URLs. pytest-asyncio
is not installed, so each test runs its coroutine with :func:`run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import io
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import pytest
from PIL import Image, ImageOps
from telegram import Bot, BotCommand, BotCommandScopeChat, InlineKeyboardButton, Update
from telegram import InlineKeyboardMarkup as Keyboard
from telegram.error import BadRequest, Conflict, EndPointNotFound, InvalidToken, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fakes.telegram_objects import command_entities
from tests.fakes.telegram_server import CLIENT_GONE, TOKEN, FakeTelegramServer

CHAT = USER = 4242
SIZES = [(90, 60), (320, 213), (800, 533), (900, 600)]  # a 900x600 photo as Telegram sizes it
KEYBOARD = Keyboard([[InlineKeyboardButton("Smile", callback_data="smile"),
                      InlineKeyboardButton("Undo", callback_data="undo")]])  # fmt: skip


@pytest.fixture
def server() -> Iterator[FakeTelegramServer]:
    with FakeTelegramServer() as fake:
        yield fake


def run(coro: Coroutine[Any, Any, Any], limit_s: float = 20.0) -> Any:
    """Run a test coroutine; a hang fails the test instead of stalling the run."""
    return asyncio.run(asyncio.wait_for(coro, limit_s))


def image(width: int = 64, height: int = 48) -> bytes:
    picture = Image.new("RGB", (width, height))
    picture.putdata([(x * 4 % 256, y * 5 % 256, 90) for y in range(height) for x in range(width)])
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def inverted(data: bytes) -> bytes:
    buffer = io.BytesIO()
    ImageOps.invert(Image.open(io.BytesIO(data)).convert("RGB")).save(buffer, format="PNG")
    return buffer.getvalue()


class BotUnderTest:
    """The bot under test: a few handlers, recording what they saw and what failed."""

    def __init__(self) -> None:
        self.seen: list[int] = []  # update ids, in the order the handlers got them
        self.downloads: list[bytes] = []
        self.errors: list[BaseException] = []

    def add_to(self, app: Application) -> None:
        app.add_handler(CommandHandler("echo", self.echo))
        app.add_handler(CommandHandler("start", self.start))
        app.add_handler(CommandHandler("work", self.work))
        app.add_handler(MessageHandler(filters.PHOTO | filters.Document.IMAGE, self.photo))
        app.add_handler(CallbackQueryHandler(self.button))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self.text))
        app.add_error_handler(self.failed)

    async def echo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.seen.append(update.update_id)
        await update.effective_message.reply_text(" ".join(context.args or ["(nothing)"]))

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.seen.append(update.update_id)
        await update.effective_message.reply_text("Pick one", reply_markup=KEYBOARD)

    async def text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.seen.append(update.update_id)
        await update.effective_message.reply_text(f"got {update.effective_message.text}")

    async def photo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.seen.append(update.update_id)
        message = update.effective_message
        await context.bot.send_chat_action(message.chat_id, "upload_photo")
        attachment = message.photo[-1] if message.photo else message.document
        data = bytes(await (await attachment.get_file()).download_as_bytearray())
        self.downloads.append(data)
        edited = inverted(data)
        await message.reply_photo(edited, caption="Edited", filename="edited.png")
        await message.reply_document(edited, filename="edited.png", caption="Full quality")

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.seen.append(update.update_id)
        query = update.callback_query
        await query.answer(f"Chose {query.data}")
        await query.edit_message_text(f"You chose {query.data}")

    async def work(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.seen.append(update.update_id)
        status = await update.effective_message.reply_text("Working: 0%")
        for step in ("Working: 50%", "Working: 90%", "Done"):
            status = await status.edit_text(step)

    async def failed(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        self.errors.append(context.error)


def build(server: FakeTelegramServer, token: str = TOKEN, **builder: Any) -> Application:
    app_builder = (
        ApplicationBuilder().token(token)
        .base_url(server.base_url).base_file_url(server.base_file_url)
    )  # fmt: skip
    for name, value in builder.items():
        app_builder = getattr(app_builder, name)(value)
    return app_builder.build()


@contextlib.asynccontextmanager
async def polling(
    server: FakeTelegramServer, bot: BotUnderTest, **builder: Any
) -> AsyncIterator[Application]:
    """A started Application polling the fake; stopped and shut down on exit."""
    app = build(server, **builder)
    bot.add_to(app)
    async with app:  # initialize() ... shutdown()
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=10))
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()
    assert not bot.errors, bot.errors


def test_echo_command_and_startup_calls(server: FakeTelegramServer) -> None:
    bot = BotUnderTest()

    async def scenario() -> None:
        async with polling(server, bot):
            update_id = server.user_sends_command(CHAT, USER, "/echo hello world")
            reply = await server.wait_for("sendMessage", chat_id=CHAT)
            assert reply.params["text"] == "hello world"
            assert reply.result["chat"]["id"] == CHAT and reply.result["from"]["is_bot"]
            assert bot.seen == [update_id]

    run(scenario())
    methods = server.methods_called()
    # PTB's startup: getMe (Bot.initialize), deleteWebhook (the polling bootstrap), then polls.
    assert methods[:3] == ["getMe", "deleteWebhook", "getUpdates"]
    # Shutdown: the last call is the getUpdates that confirms what was fetched.
    assert methods[-1] == "getUpdates" and server.calls[-1].params["timeout"] == 0
    assert set(methods) == {"getMe", "deleteWebhook", "getUpdates", "sendMessage"}
    assert server.unknown_calls() == []
    assert server.pending_updates() == []


@pytest.mark.parametrize("as_document", [False, True])
def test_photo_is_downloaded_and_edited_photo_uploaded(
    server: FakeTelegramServer, as_document: bool
) -> None:
    bot = BotUnderTest()
    original = image(900, 600)

    async def scenario() -> None:
        async with polling(server, bot):
            server.user_sends_photo(CHAT, USER, original, as_document=as_document,
                                    file_name="me.png", mime_type="image/png")  # fmt: skip
            await server.wait_for("sendDocument", chat_id=CHAT)

    run(scenario())
    assert bot.downloads == [original]  # the largest PhotoSize / the document, byte for byte
    (get_file,) = server.calls_to("getFile")
    if as_document:
        assert server.files[get_file.params["file_id"]].file_name == "me.png"
    else:  # a photo comes in sizes up to 800 px plus the original; the bot took the largest
        delivered = next(c.result[0] for c in server.calls_to("getUpdates") if c.result)
        sizes = delivered["message"]["photo"]
        assert [(s["width"], s["height"]) for s in sizes] == SIZES
        assert get_file.params["file_id"] == sizes[-1]["file_id"]
    assert server.calls_to("sendChatAction")[0].params == {
        "chat_id": CHAT,
        "action": "upload_photo",
    }

    (photo,) = server.calls_to("sendPhoto")
    upload = photo.upload("photo")
    assert (upload.filename, upload.content_type) == ("edited.png", "image/png")
    assert upload.data == inverted(original)
    pixels = Image.open(io.BytesIO(upload.data)).convert("RGB")
    assert pixels.size == (900, 600)
    assert pixels.getpixel((10, 20)) == (255 - 40, 255 - 100, 255 - 90)
    assert photo.params["caption"] == "Edited"
    assert [(s["width"], s["height"]) for s in photo.result["photo"]] == SIZES

    (document,) = server.calls_to("sendDocument")
    sent = document.upload("document")
    assert (sent.filename, sent.content_type, sent.data) == ("edited.png", "image/png", upload.data)
    assert document.result["document"]["file_name"] == "edited.png"
    assert document.result["document"]["mime_type"] == "image/png"
    assert server.unknown_calls() == []


def test_button_press_is_answered_and_the_message_edited(server: FakeTelegramServer) -> None:
    bot = BotUnderTest()

    async def scenario() -> None:
        async with polling(server, bot):
            server.user_sends_command(CHAT, USER, "/start")
            menu = await server.wait_for("sendMessage", chat_id=CHAT)
            message_id = menu.result["message_id"]
            with pytest.raises(ValueError, match="no button 'frown'"):
                server.user_presses_button(CHAT, USER, message_id, "frown")
            server.user_presses_button(CHAT, USER, message_id, "smile")
            await server.wait_for("editMessageText", chat_id=CHAT, message_id=message_id)

    run(scenario())
    (menu,) = server.calls_to("sendMessage")
    assert menu.params["reply_markup"] == {"inline_keyboard": [[
        {"text": "Smile", "callback_data": "smile"}, {"text": "Undo", "callback_data": "undo"},
    ]]}  # fmt: skip
    assert menu.result["reply_markup"] == menu.params["reply_markup"]  # echoed, PTB parsed it
    (answer,) = server.calls_to("answerCallbackQuery")
    (query_id,) = server.callback_queries
    assert answer.params == {"callback_query_id": query_id, "text": "Chose smile"}
    assert server.callback_answers == {query_id: answer.params}
    (edit,) = server.calls_to("editMessageText")
    assert edit.params["text"] == "You chose smile"
    (shown,) = server.bot_messages(CHAT)
    assert shown["text"] == "You chose smile" and "edit_date" in shown
    assert "reply_markup" not in shown  # an edit that does not repeat the keyboard drops it


def test_status_message_edited_several_times(server: FakeTelegramServer) -> None:
    bot = BotUnderTest()

    async def scenario() -> None:
        async with polling(server, bot):
            server.user_sends_command(CHAT, USER, "/work")
            await server.wait_for("editMessageText", text="Done")

    run(scenario())
    (status,) = server.calls_to("sendMessage")
    edits = server.calls_to("editMessageText")
    assert [e.params["text"] for e in edits] == ["Working: 50%", "Working: 90%", "Done"]
    assert {e.params["message_id"] for e in edits} == {status.result["message_id"]}
    assert all(e.ok for e in edits)
    assert [m["text"] for m in server.bot_messages(CHAT)] == ["Done"]


def test_polling_offsets_advance_and_nothing_is_delivered_twice(
    server: FakeTelegramServer,
) -> None:
    bot = BotUnderTest()
    sent: list[int] = []

    async def scenario() -> None:
        async with polling(server, bot):
            # Three at once (one getUpdates answer), then one while the bot long-polls.
            sent.extend(server.user_sends_text(CHAT, USER, f"hi {n}") for n in range(3))
            await server.wait_for("sendMessage", text="got hi 2")
            confirms = sent[-1] + 1  # the poll after the batch: a 10 s long poll, in flight
            waiting = await server.wait_for("getUpdates", answered=False, offset=confirms)
            sent.append(server.user_sends_text(CHAT, USER, "hi 3"))
            woken = await server.wait_for("getUpdates", lambda c: c.index == waiting.index)
            assert [u["update_id"] for u in woken.result] == [sent[-1]]  # woken, not timed out
            await server.wait_for("sendMessage", text="got hi 3")

    run(scenario())
    assert bot.seen == sent
    delivered = [update_id for batch in server.deliveries for update_id in batch]
    assert sorted(delivered) == sent  # each update in exactly one getUpdates answer
    offsets = [c.params.get("offset", 0) for c in server.calls_to("getUpdates")]
    assert offsets == sorted(offsets) and offsets[-1] == sent[-1] + 1
    assert server.pending_updates() == []


def test_shutdown_ends_the_long_poll_quickly(server: FakeTelegramServer) -> None:
    ended = (CLIENT_GONE, 409)
    bot = BotUnderTest()
    took: list[float] = []

    async def scenario() -> None:
        app = build(server)
        bot.add_to(app)
        await app.initialize()
        await app.start()
        await app.updater.start_polling(timeout=dtm.timedelta(seconds=30))
        await server.wait_for("getUpdates", answered=False, timeout=5)  # a 30 s poll in flight
        began = time.monotonic()
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        took.append(time.monotonic() - began)
        # The fake ended the abandoned poll: it saw the hang-up, or (when PTB's next poll
        # came first) ended it as Telegram does, with 409. No 30 s wait is left over.
        await server.wait_for("getUpdates", lambda c: c.status in ended, timeout=2)

    run(scenario())
    assert took[0] < 2.0, f"shutdown took {took[0]:.2f}s"
    # PTB cancels its pending poll, then confirms with one more getUpdates(timeout=0).
    polls = server.calls_to("getUpdates")
    assert polls[-1].params == {"offset": 0, "timeout": 0} and polls[-1].ok
    began = time.monotonic()
    server.stop()  # and the server's own stop does not wait for the abandoned poll
    assert time.monotonic() - began < 2.0
    assert len(polls) == 2 and polls[0].status in ended


def test_wrong_token_fails_like_telegram(server: FakeTelegramServer) -> None:
    wrong = "123456789:AAWrongTokenWrongTokenWrongToken00"

    async def scenario() -> None:
        app = build(server, token=wrong)
        try:
            with pytest.raises(InvalidToken, match="rejected by the server"):
                await app.initialize()
        finally:  # a failed initialize leaves PTB's HTTP client open
            await app.bot.request.shutdown()

    run(scenario())
    (call,) = server.calls
    assert (call.method, call.status, call.params) == ("getMe", 401, {})
    assert call.response == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert wrong not in repr(server.calls) and TOKEN not in repr(server.calls)


def test_updater_retries_a_rate_limited_poll(
    server: FakeTelegramServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PTB's polling loop waits ``retry_after`` (+0.5 s) after a 429, then polls again."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB formats the error: no int deprecation
    bot = BotUnderTest()
    server.rate_limit("getUpdates", retry_after=0.1)

    async def scenario() -> None:
        async with polling(server, bot):
            server.user_sends_command(CHAT, USER, "/echo again")
            await server.wait_for("sendMessage", text="again")

    run(scenario())
    polls = server.calls_to("getUpdates")
    assert polls[0].status == 429
    assert polls[0].response == {
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 0.1",
        "parameters": {"retry_after": 0.1},
    }  # fmt: skip
    assert polls[1].ok and len(bot.seen) == 1


def test_rate_limited_send_raises_retry_after_then_works(
    server: FakeTelegramServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # RetryAfter.retry_after as a timedelta
    server.user_sends_text(CHAT, USER, "hello")
    server.rate_limit("sendMessage", retry_after=3)

    async def scenario() -> None:
        async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.base_file_url) as bot:
            with pytest.raises(RetryAfter) as limited:
                await bot.send_message(CHAT, "first")
            assert limited.value.retry_after == dtm.timedelta(seconds=3)
            assert (await bot.send_message(CHAT, "second")).text == "second"

    run(scenario())
    assert [(c.status, c.params["text"]) for c in server.calls_to("sendMessage")] == [
        (429, "first"), (200, "second")
    ]  # fmt: skip


def test_aioratelimiter_retries_a_429(server: FakeTelegramServer) -> None:
    pytest.importorskip(
        "aiolimiter",
        reason="AIORateLimiter needs aiolimiter (python-telegram-bot[rate-limiter]), not installed",
    )
    from telegram.ext import AIORateLimiter

    bot = BotUnderTest()
    server.rate_limit("sendMessage", retry_after=0.2)

    async def scenario() -> None:
        async with polling(server, bot, rate_limiter=AIORateLimiter(max_retries=1)):
            server.user_sends_command(CHAT, USER, "/echo limited")
            await server.wait_for("sendMessage", lambda c: c.ok, text="limited")

    run(scenario())
    assert [c.status for c in server.calls_to("sendMessage")] == [429, 200]


def test_bot_api_errors_are_telegrams(server: FakeTelegramServer) -> None:
    server.user_sends_text(CHAT, USER, "hello")

    async def scenario() -> None:
        async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.base_file_url) as bot:
            with pytest.raises(BadRequest, match="Chat not found"):
                await bot.send_message(CHAT + 1, "nobody wrote to the bot from there")
            with pytest.raises(BadRequest, match="Message text is empty"):
                await bot.send_message(CHAT, " ")
            with pytest.raises(BadRequest, match="Message is too long"):
                await bot.send_message(CHAT, "x" * 4097)
            message = await bot.send_message(CHAT, "same", reply_markup=KEYBOARD)
            with pytest.raises(BadRequest, match="Message is not modified"):
                await message.edit_text("same", reply_markup=KEYBOARD)
            with pytest.raises(BadRequest, match="Image_process_failed"):
                await bot.send_photo(CHAT, b"not an image", filename="x.png")
            with pytest.raises(BadRequest, match="Wrong file identifier"):
                await bot.send_photo(CHAT, "no-such-file-id")
            with pytest.raises(BadRequest, match="Invalid file_id"):
                await bot.get_file("no-such-file-id")
            with pytest.raises(BadRequest, match="Query is too old"):
                await bot.answer_callback_query("123")
            assert await message.delete()
            with pytest.raises(BadRequest, match="Message to delete not found"):
                await message.delete()
            with pytest.raises(EndPointNotFound):
                await bot.do_api_request("sendTelepathy", api_kwargs={"chat_id": CHAT})

    run(scenario())
    (unknown,) = server.unknown_calls()
    assert (unknown.method, unknown.params) == ("sendTelepathy", {"chat_id": CHAT})
    assert unknown.response == {
        "ok": False, "error_code": 404, "description": "Not Found: method sendTelepathy"
    }  # fmt: skip


def test_file_ids_resend_and_markup_edits(server: FakeTelegramServer) -> None:
    server.user_sends_photo(CHAT, USER, image(400, 300), caption="me")
    server.user_sends_photo(CHAT, USER, b"%PDF-1.4", as_document=True, file_name="a.pdf",
                            mime_type="application/pdf")  # fmt: skip

    async def scenario() -> None:
        async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.base_file_url) as bot:
            photo_message, document_message = [u.message for u in await bot.get_updates()]
            assert photo_message.caption == "me"
            again = await bot.send_photo(CHAT, photo_message.photo[-1].file_id)
            assert again.photo == photo_message.photo  # the same PhotoSize set
            with pytest.raises(BadRequest, match="Type of file mismatch"):
                await bot.send_document(CHAT, photo_message.photo[-1].file_id)
            document = document_message.document
            assert (document.file_name, document.mime_type) == ("a.pdf", "application/pdf")
            resent = await bot.send_document(CHAT, document.file_id, caption="back")
            assert resent.document.file_id == document.file_id and resent.caption == "back"
            edited = await bot.edit_message_reply_markup(
                CHAT, resent.message_id, reply_markup=KEYBOARD
            )
            assert edited.reply_markup == KEYBOARD
            edited = await edited.edit_caption("new caption", reply_markup=KEYBOARD)
            assert edited.caption == "new caption" and edited.reply_markup == KEYBOARD

    run(scenario())
    assert server.unknown_calls() == []


def test_html_parse_mode_becomes_entities(server: FakeTelegramServer) -> None:
    server.user_sends_text(CHAT, USER, "hello")

    async def scenario() -> None:
        async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.base_file_url) as bot:
            sent = await bot.send_message(CHAT, "😀 <b>Done</b> &lt;3", parse_mode="HTML")
            assert sent.text == "😀 Done <3"
            assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 3, 4)]
            assert sent.text_html == "😀 <b>Done</b> &lt;3"
            with pytest.raises(BadRequest, match="Can't parse entities"):
                await bot.send_message(CHAT, "<b>unclosed", parse_mode="HTML")
            with pytest.raises(BadRequest, match="Message is not modified"):
                await sent.edit_text("😀 <b>Done</b> &lt;3", parse_mode="HTML")
            plain = await sent.edit_text("😀 Done <3")  # same text, no bold: a change
            assert plain.entities == ()

    run(scenario())
    assert server.calls_to("sendMessage")[0].params["text"] == "😀 <b>Done</b> &lt;3"  # as sent


def test_commands_per_scope_and_language(server: FakeTelegramServer) -> None:
    async def scenario() -> None:
        async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.base_file_url) as bot:
            await bot.set_my_commands([BotCommand("undo", "Undo the last edit")])
            chat_scope = BotCommandScopeChat(CHAT)
            await bot.set_my_commands(
                [BotCommand("start", "Beginnen")], scope=chat_scope, language_code="de"
            )
            assert [c.command for c in await bot.get_my_commands()] == ["undo"]
            german = await bot.get_my_commands(scope=chat_scope, language_code="de")
            assert [(c.command, c.description) for c in german] == [("start", "Beginnen")]
            assert await bot.get_my_commands(scope=chat_scope) == ()
            with pytest.raises(BadRequest, match="Bot_command_invalid"):
                await bot.set_my_commands([BotCommand("Undo!", "bad name")])

    run(scenario())
    (_, scoped, *_) = server.calls_to("setMyCommands")
    assert scoped.params == {
        "commands": [{"command": "start", "description": "Beginnen"}],
        "scope": {"type": "chat", "chat_id": CHAT},
        "language_code": "de",
    }


def test_a_second_poll_ends_the_first_with_conflict(server: FakeTelegramServer) -> None:
    """Two bot instances polling at once: Telegram ends the older poll with 409."""

    async def scenario() -> None:
        urls = {"base_url": server.base_url, "base_file_url": server.base_file_url}
        async with Bot(TOKEN, **urls) as one, Bot(TOKEN, **urls) as other:
            first = asyncio.create_task(one.get_updates(timeout=30))
            await server.wait_for("getUpdates", answered=False)
            assert await other.get_updates(timeout=0) == ()
            with pytest.raises(Conflict, match="terminated by other getUpdates request"):
                await first

    run(scenario())
    assert [c.status for c in server.calls_to("getUpdates")] == [409, 200]


def test_wait_for_fails_when_nothing_matches(server: FakeTelegramServer) -> None:
    server.user_sends_text(CHAT, USER, "hello")

    async def scenario() -> None:
        async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.base_file_url) as bot:
            await bot.send_message(CHAT, "one")
            with pytest.raises(AssertionError, match="no answered sendMessage call"):
                await server.wait_for("sendMessage", text="two", timeout=0.1)
            assert (await server.wait_for("sendMessage", text="one")).ok  # already there
            with pytest.raises(AssertionError, match="calls: getMe:200, sendMessage:200"):
                await server.wait_for("sendMessage", since=2, timeout=0.1)  # only newer ones

    run(scenario())
    assert server.wait_for_sync("sendMessage", lambda c: c.result["text"] == "one").index == 1
    with pytest.raises(AssertionError):
        server.wait_for_sync("sendPhoto", timeout=0.1)


def test_commands_get_utf16_entities_like_telegram() -> None:
    assert command_entities("/undo") == [{"type": "bot_command", "offset": 0, "length": 5}]
    # An emoji outside the BMP is two UTF-16 code units; a path is no command.
    assert command_entities("😀 /smile@chatface_test_bot more /a/b") == [
        {"type": "bot_command", "offset": 3, "length": 24}
    ]

"""The Telegram bot: a thin python-telegram-bot (PTB) adapter over the conversation core.

Photos and image documents become faces, text becomes edits, commands and inline buttons
become core commands, and each reply goes back as a photo (with Undo, Redo, Original,
Reset and Full size buttons) or as a message. Updates are handled concurrently, so users
never wait for each other (the core limits each user's rate and the render queue their
renders); a render shows one status message edited as its steps complete, and
AIORateLimiter keeps within Telegram's limits. Neither the token (it is part of every
API URL) nor message texts reach the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest, InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from chatface.bots.conversation import COMMANDS, ConversationCore, Delivery, Reply
from chatface.bots.telegram_status import StatusMessage
from chatface.errors import ChatFaceError, ImageError, ImageTooLargeError

if TYPE_CHECKING:
    from telegram import Bot

    from chatface.engine.editor import Engine
    from chatface.engine.types import Progress

logger = logging.getLogger(__name__)

PLATFORM = "telegram"
# Callback data of our buttons, with the id of the user they belong to (64 bytes at most):
# "cf:undo:5001", "cf:forget:yes:5001"; messages from before owners have "cf:undo".
PREFIX = "cf:"
RESULT_BUTTONS = (("Undo", "undo"), ("Redo", "redo"), ("Original", "original"), ("Reset", "reset"))
FULL = ("full", "Send the latest result as a full-size file", "以文件发送最新结果的原图")
HINT = "Send me a photo with a face, or tell me what to change."
MAX_TEXT, MAX_CAPTION = 4096, 1024  # Telegram's limits, in characters
STOP_TIMEOUT_S = 25.0  # at a stop, handlers that run get this long to finish
NOT_YOURS = "These buttons belong to someone else's photo; send your own photo to edit it."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_button(data: str) -> tuple[str, str, str | None]:
    """A button's command, its argument ("yes" of forget) and its owner's user id (None
    on buttons sent before they had one: they belong to whoever presses them)."""
    name, *rest = data.removeprefix(PREFIX).split(":")
    arg = rest.pop(0) if name == "forget" and rest else ""
    return name, arg, rest[0] if rest else None


class TelegramBot:
    """The handlers: each turns an update into one core call and sends back its reply."""

    def __init__(
        self, core: ConversationCore, *, max_bytes: int, status_interval_s: float = 1.0
    ) -> None:
        self.core = core
        self.max_bytes = max_bytes
        self.status_interval_s = status_interval_s

    def add_to(self, app: Application) -> None:
        app.add_handler(CommandHandler(FULL[0], self.on_full))
        app.add_handler(CommandHandler([c.name for c in COMMANDS], self.on_command))
        app.add_handler(MessageHandler(filters.PHOTO | filters.Document.ALL, self.on_photo))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self.on_text))
        app.add_handler(MessageHandler(filters.ALL, self.on_other))
        app.add_handler(CallbackQueryHandler(self.on_button, pattern=f"^{PREFIX}"))
        app.add_error_handler(self.on_error)

    # --- updates ------------------------------------------------------------------------

    async def on_photo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None and user is not None
        media = message.photo[-1] if message.photo else message.document
        assert media is not None
        chat, bot, owner = message.chat_id, context.bot, str(user.id)
        if (media.file_size or 0) > self.max_bytes:  # refused before downloading
            reply = Reply(self._too_large(media.file_size or 0), error=True)
            await self.send(bot, chat, reply, owner=owner)
            return

        async def download() -> bytes:
            """Called by the core in the chat's turn, once the flood limit let it through."""
            try:
                file = await media.get_file()  # it may know the size when the message did not
                if (file.file_size or 0) > self.max_bytes:
                    raise ImageTooLargeError(self._too_large(file.file_size or 0))
                return bytes(await file.download_as_bytearray())
            except TelegramError as exc:
                logger.warning("a photo could not be downloaded (%s)", type(exc).__name__)
                raise ImageError("I could not download that photo; please send it again.") from None

        name, uid = getattr(media, "file_name", None) or "", f"tg:{update.update_id}"
        reply = await self._answer(
            bot,
            chat,
            owner,
            lambda p: self.core.receive_photo(owner, str(chat), download, name, p, uid),
            "Reading the face",
        )
        caption = (message.caption or "").strip()
        if caption and not reply.error:  # a photo sent with "make her smile"
            await self._answer(
                bot,
                chat,
                owner,
                lambda p: self.core.receive_text(owner, str(chat), caption, p, uid + "+"),
            )

    def _too_large(self, size: int) -> str:
        limit = f"the limit is {self.max_bytes / 1e6:.0f} MB"
        return f"The file is {size / 1e6:.1f} MB; {limit}, so send a smaller photo."

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None and user is not None
        text, chat, uid = message.text or "", message.chat_id, f"tg:{update.update_id}"
        owner = str(user.id)
        if not text.strip():
            await self.send(context.bot, chat, Reply(HINT), owner=owner)
            return
        await self._answer(
            context.bot,
            chat,
            owner,
            lambda p: self.core.receive_text(owner, str(chat), text, p, uid),
        )

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None and message.text and user is not None
        name = message.text.split()[0][1:].split("@")[0].lower()
        arg, chat, uid = " ".join(context.args or ()), message.chat_id, f"tg:{update.update_id}"
        owner = str(user.id)
        await self._answer(
            context.bot,
            chat,
            owner,
            lambda p: self.core.command(owner, str(chat), name, arg, p, uid),
        )

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None and query.message is not None
        name, arg, owner = _parse_button(query.data)
        user, chat, uid = str(query.from_user.id), query.message.chat.id, f"tg:{update.update_id}"
        if owner not in (None, user):  # a result or question of someone else in a group
            await query.answer(NOT_YOURS, show_alert=True)
            return
        await query.answer()
        if name == FULL[0]:
            await self._send_full(context.bot, user, chat)
        elif name == "forget":  # the confirmation's own message becomes the answer
            reply = await self.core.command(user, str(chat), name, arg, update_id=uid)
            if reply.text:
                with contextlib.suppress(BadRequest):  # pressed twice: already answered
                    await query.edit_message_text(_clip(reply.text, MAX_TEXT))
        elif name in {command for _, command in RESULT_BUTTONS}:
            await self._answer(
                context.bot,
                chat,
                user,
                lambda p: self.core.command(user, str(chat), name, "", p, uid),
            )

    async def on_full(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.effective_user is not None
        await self._send_full(context.bot, str(update.effective_user.id), update.effective_chat.id)

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Stickers, voice notes, unknown commands, ...: say what the bot takes."""
        if update.effective_chat is not None:
            await context.bot.send_message(update.effective_chat.id, HINT)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        logger.error("a Telegram update failed", exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            with contextlib.suppress(TelegramError):
                text = "Something went wrong on my side; please try again."
                await context.bot.send_message(update.effective_chat.id, text)

    async def recover(self, bot: Bot) -> None:
        """Carry out the jobs the last run left unfinished (once, at start-up), answering
        each as it is done."""

        async def deliver(delivery: Delivery) -> None:
            try:
                await self.send(bot, int(delivery.chat), delivery.reply, owner=delivery.user)
            except TelegramError as exc:  # e.g. the user blocked the bot meanwhile
                logger.warning("a recovered reply could not be delivered: %s", exc)

        await self.core.recover(deliver)

    # --- replies -------------------------------------------------------------------------

    async def _answer(
        self,
        bot: Bot,
        chat: int,
        owner: str,
        call: Callable[[Progress], Awaitable[Reply]],
        label: str = "Rendering",
    ) -> Reply:
        """Run a core call of ``owner`` with a status message for its progress; send its
        reply (a user error raised on the way, such as a failed download, is one too)."""
        status = StatusMessage(bot, chat, self.status_interval_s, label)
        try:
            reply = await call(status.progress)
        except ChatFaceError as exc:
            reply = Reply(str(exc), error=True)
        finally:
            await status.close()
        await self.send(bot, chat, reply, owner=owner)
        return reply

    async def send(self, bot: Bot, chat: int, reply: Reply, *, owner: str) -> None:
        """Send a core reply of ``owner`` (the user whose buttons it gets): a result photo
        with buttons, another image, or a message."""
        if reply.empty:
            return  # a duplicate update, a replaced render, a repeated flood warning
        if reply.confirm == "forget":
            keyboard = [[InlineKeyboardButton(label, callback_data=f"{PREFIX}forget:{arg}:{owner}")
                         for label, arg in (("Yes, delete", "yes"), ("No", "no"))]]  # fmt: skip
            markup = InlineKeyboardMarkup(keyboard)
            await bot.send_message(chat, _clip(reply.text, MAX_TEXT), reply_markup=markup)
            return
        if reply.image is None:
            await bot.send_message(chat, _clip(reply.text, MAX_TEXT))
            return
        result = reply.plan is not None and not reply.error
        markup = None
        if result:
            row = [InlineKeyboardButton(label, callback_data=f"{PREFIX}{name}:{owner}")
                   for label, name in RESULT_BUTTONS]  # fmt: skip
            full = [InlineKeyboardButton("Full size", callback_data=f"{PREFIX}{FULL[0]}:{owner}")]
            markup = InlineKeyboardMarkup([row, full])
        filename = "chatface.png" if reply.image_type in (None, "image/png") else "chatface.jpg"
        caption = _clip(reply.text, MAX_CAPTION) or None
        try:
            await bot.send_photo(
                chat, reply.image, caption=caption, filename=filename, reply_markup=markup
            )
        except BadRequest:  # too large or too narrow for a photo: Telegram takes it as a file
            await bot.send_document(
                chat, reply.image, caption=caption, filename=filename, reply_markup=markup
            )

    async def _send_full(self, bot: Bot, user: str, chat: int) -> None:
        """The chat's current image as a file: nothing is lost to Telegram's compression."""
        reply = await self.core.current(user, str(chat))
        if reply.image is None:
            await self.send(bot, chat, reply, owner=user)
            return
        await bot.send_chat_action(chat, ChatAction.UPLOAD_DOCUMENT)
        await bot.send_document(chat, reply.image, filename="chatface.png", caption=reply.text)


# --- start-up ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """Webhook mode: Telegram posts updates to ``url``; we listen on ``listen:port``."""

    url: str
    listen: str = "127.0.0.1"
    port: int = 8443


def webhook_options(url: str | None, listen: str | None, port: int | None) -> Webhook | None:
    """The webhook settings, checked; None for long polling."""
    if not url:
        if listen is not None or port is not None:
            raise ChatFaceError("--listen and --port only go with --webhook-url.")
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ChatFaceError(f"The webhook URL must be an https:// address; got {url!r}.")
    if port is not None and not 0 < port < 65536:
        raise ChatFaceError(f"--port must be between 1 and 65535; got {port}.")
    return Webhook(url, listen or Webhook.listen, port or Webhook.port)


def quiet_loggers() -> None:
    """httpx logs every request URL (they hold the token) and PTB logs the URL and the
    updates (message texts) at DEBUG: keep those loggers above that."""
    for name, level in (("httpx", logging.WARNING), ("httpcore", logging.WARNING),
                        ("telegram", logging.INFO)):  # fmt: skip
        logger_ = logging.getLogger(name)
        logger_.setLevel(max(level, logger_.getEffectiveLevel()))


async def set_commands(bot: Bot) -> None:
    """The command menu, in English by default and in Chinese for Chinese clients."""
    entries = [(c.name, c.description, c.description_zh) for c in COMMANDS] + [FULL]
    await bot.set_my_commands([BotCommand(name, en) for name, en, _ in entries])
    await bot.set_my_commands([BotCommand(name, zh) for name, _, zh in entries], language_code="zh")


@contextlib.asynccontextmanager
async def running(
    core: ConversationCore,
    token: str,
    *,
    base_url: str = "",
    base_file_url: str = "",
    webhook: Webhook | None = None,
    status_interval_s: float = 1.0,
    poll_timeout_s: float = 10.0,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> AsyncIterator[Application]:
    """The bot serving updates (polling or webhook) while the block runs; at its end it
    stops as :func:`stop` says."""
    quiet_loggers()
    builder = ApplicationBuilder().token(token).concurrent_updates(True)
    builder = builder.rate_limiter(AIORateLimiter(max_retries=3))
    builder = builder.base_url(base_url) if base_url else builder
    app = (builder.base_file_url(base_file_url) if base_file_url else builder).build()
    bot = TelegramBot(
        core, max_bytes=core.engine.config["photos.max_bytes"], status_interval_s=status_interval_s
    )
    bot.add_to(app)
    try:
        await app.initialize()
    except InvalidToken:
        await app.shutdown()
        raise ChatFaceError(
            "Telegram refused the bot token; check `chatface keys set telegram` or "
            "$TELEGRAM_BOT_TOKEN."
        ) from None
    try:
        await set_commands(app.bot)
        await app.start()
        app.create_task(bot.recover(app.bot))
        updates = ["message", "callback_query"]
        if webhook is None:
            await app.updater.start_polling(timeout=poll_timeout_s, allowed_updates=updates)  # type: ignore[union-attr]
        else:
            await app.updater.start_webhook(  # type: ignore[union-attr]
                listen=webhook.listen,
                port=webhook.port,
                url_path="telegram",
                webhook_url=webhook.url,
                # Telegram sends it with each update: derived from the token, not the token.
                secret_token=hashlib.sha256(f"chatface-webhook:{token}".encode()).hexdigest(),
                allowed_updates=updates,
            )
        try:
            yield app
        finally:
            await app.updater.stop()  # type: ignore[union-attr]
            await stop(app, stop_timeout_s)
    finally:
        await app.shutdown()


async def stop(app: Application, timeout_s: float) -> None:
    """Stop taking updates and let the handlers and the recovery that run finish: PTB's
    ``Application.stop`` waits for them, here for at most ``timeout_s``. What is cut off
    then stays an unfinished job, carried out at the next start."""
    try:
        await asyncio.wait_for(app.stop(), timeout_s)
    except TimeoutError:
        logger.warning("stopped without waiting longer for the updates still being handled")


def run(
    engine: Engine,
    backend: str,
    token: str,
    *,
    base_url: str = "",
    base_file_url: str = "",
    webhook: Webhook | None = None,
    announce: Callable[[str], None] = logger.info,
) -> None:
    """Serve until SIGINT or SIGTERM; then stop taking updates, let the handlers that run
    finish (for up to ``STOP_TIMEOUT_S``), and close the render queue and the store."""

    async def serve() -> None:
        from chatface.engine.queue import make_queue
        from chatface.storage import Store

        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        store = Store.from_config(engine.config)
        queue = await make_queue(engine)
        core: ConversationCore | None = None
        try:
            core = ConversationCore(engine, store, queue, PLATFORM, backend=backend)
            urls = {"base_url": base_url, "base_file_url": base_file_url}
            async with running(core, token, webhook=webhook, **urls) as app:
                how = f"webhook {webhook.url}" if webhook else "long polling"
                announce(f"Telegram bot @{app.bot.username} is running ({how}); Ctrl-C stops it.")
                await stop.wait()
            announce("Stopped.")
        finally:
            await queue.close()
            if core is not None:
                core.close()
            store.close()

    asyncio.run(serve())

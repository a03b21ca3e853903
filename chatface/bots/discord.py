"""The Discord bot: a thin adapter from discord.py to the conversation core.

Slash commands (/edit with a photo and a text, /undo, /redo, ... /help) are deferred at
once and answered with followups, since a render can outlast Discord's three seconds to
acknowledge. Plain messages are answered in DMs and in the configured channels: a photo
becomes the face, a text an edit. Results carry Undo, Redo and Original buttons that only
their owner may click, answered by dynamic items added at start-up, so buttons under old
messages keep working after a restart. A session belongs to a user in a channel: ``user``
is the author's id, ``chat`` the channel's. A stop lets what runs finish (bounded); see
:meth:`DiscordBot.close`. Message texts and the token are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import aiohttp
import discord
import yarl
from discord import app_commands

from chatface.bots.conversation import ConversationCore
from chatface.bots.discord_ui import (
    MAX_CONTENT,
    SEND_ERRORS,
    ChineseDescriptions,
    ForgetAnswer,
    ResultButton,
    StatusMessage,
    message_of,
    why,
)
from chatface.bots.replies import COMMANDS, FAILED, Delivery, Reply
from chatface.errors import ChatFaceError, ConfigError, ImageError, KeyStoreError

if TYPE_CHECKING:
    from chatface.engine.editor import Engine

logger = logging.getLogger(__name__)

NOT_SLASH = {"start"}  # Discord lists slash commands itself; there is no /start habit
EMPTY = "Send me a photo with a face, or tell me what to change."
STOPPING = "I am restarting; please send that again in a minute."
STOP_TIMEOUT_S = 25.0  # at close(), what runs gets this long to finish

Turn = Callable[[str, str, str], Awaitable[list[Reply]]]  # (user, chat, update id) -> replies


def api_base(url: str) -> str:
    """discord.py's ``Route.BASE`` for a base URL given with or without ``/api/v10``."""
    url = url.rstrip("/")
    return url if re.search(r"/api/v\d+$", url) else url + "/api/v10"


def channel_ids(setting: str, extra: Iterable[int] = ()) -> frozenset[int]:
    """The channels named by ``bots.discord_channels`` (comma-separated ids) and ``extra``."""
    ids = set(extra)
    for part in filter(None, (p.strip() for p in setting.split(","))):
        if not part.isdigit():
            raise ConfigError(
                f"bots.discord_channels must be comma-separated channel ids; got {part!r}."
            )
        ids.add(int(part))
    return frozenset(ids)


def shards(count: int, ids: str) -> tuple[int | None, list[int] | None]:
    """The shard count and this process's shard ids from ``bots.discord_shard_count`` and
    ``bots.discord_shard_ids``, as discord.py's ``AutoShardedClient`` takes them: (None,
    None) lets Discord recommend a count and runs every shard in this process."""
    if count < 0:
        raise ConfigError(f"bots.discord_shard_count must be 0 or more; got {count}.")
    parts = [p.strip() for p in ids.split(",") if p.strip()]
    if not parts:
        return (count or None), None
    if count == 0:
        raise ConfigError(
            "bots.discord_shard_ids needs bots.discord_shard_count: the number of shards "
            "all processes of the bot serve together."
        )
    if not all(part.isdigit() for part in parts):
        raise ConfigError(f"bots.discord_shard_ids must be comma-separated numbers; got {ids!r}.")
    chosen = sorted({int(part) for part in parts})
    if chosen[-1] >= count:
        raise ConfigError(
            f"bots.discord_shard_ids must be below bots.discord_shard_count ({count}); "
            f"got {chosen[-1]}."
        )
    return count, chosen


def intents(channels: bool) -> discord.Intents:
    """Only what the bot needs: DMs always; messages in servers, with their text (the
    privileged Message Content intent), only when it answers in channels."""
    wanted = discord.Intents.none()
    wanted.guilds = True  # channels and permissions of servers, for interactions there
    wanted.dm_messages = True
    if channels:
        wanted.guild_messages = wanted.message_content = True
    return wanted


def _bot(interaction: discord.Interaction) -> DiscordBot:
    assert isinstance(interaction.client, DiscordBot)
    return interaction.client


def _edit_command() -> app_commands.Command:
    @app_commands.command(
        name="edit", description="Edit a face: attach a photo, say what to change, or both."
    )
    @app_commands.describe(
        text="What to change, e.g. 'make her smile' or 'a bit older'.",
        image="A photo with a face (once; later edits use the same face).",
    )
    async def edit(
        interaction: discord.Interaction, text: str = "", image: discord.Attachment | None = None
    ) -> None:
        bot = _bot(interaction)

        async def turn(user: str, chat: str, update_id: str) -> list[Reply]:
            return await bot.edit_turns(user, chat, update_id, image, text)

        await bot.answer(interaction, turn)

    return edit


def _core_command(name: str, description: str) -> app_commands.Command:
    async def callback(interaction: discord.Interaction) -> None:
        bot = _bot(interaction)
        await bot.answer(interaction, bot.command_turn(name), ephemeral=name == "forget")

    return app_commands.Command(name=name, description=description[:100], callback=callback)


class DiscordBot(discord.AutoShardedClient):
    """The chatface bot on Discord, over one :class:`ConversationCore`; it serves the
    shards ``shard_ids`` of ``shard_count`` (None: Discord's recommended count, all of
    them), so a bot too big for one process runs several, each with some shards."""

    def __init__(
        self,
        core: ConversationCore,
        *,
        channels: frozenset[int] = frozenset(),
        base_url: str = "",
        max_bytes: int,
        announce: Callable[[str], object] = logger.info,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        shard_count: int | None = None,
        shard_ids: list[int] | None = None,
    ) -> None:
        super().__init__(
            intents=intents(bool(channels)), shard_count=shard_count, shard_ids=shard_ids
        )
        self.core, self.channels, self.base_url, self.max_bytes = (
            core, channels, base_url, max_bytes)  # fmt: skip
        self.announce, self.stop_timeout_s = announce, stop_timeout_s
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(_edit_command())
        for command in COMMANDS:
            if command.name not in NOT_SLASH:
                self.tree.add_command(_core_command(command.name, command.description))
        self._recovery: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[object]] = set()  # events being answered
        self._stopping = False

    async def login(self, token: str) -> None:
        discord_log = logging.getLogger("discord")
        if discord_log.getEffectiveLevel() < logging.INFO:
            # At DEBUG discord.py logs every gateway event and request: message texts.
            discord_log.setLevel(logging.INFO)
        if self.base_url:
            # discord.py reads its API base from this class constant only: process-wide.
            discord.http.Route.BASE = api_base(self.base_url)
        await super().login(token)

    async def setup_hook(self) -> None:
        if self.base_url:
            # With a shard count set, discord.py connects to this constant and never asks
            # for the gateway.
            _, url, _ = await self.http.get_bot_gateway()
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        self.add_dynamic_items(ResultButton, ForgetAnswer)
        await self.tree.set_translator(ChineseDescriptions())
        await self.tree.sync()
        self._recovery = asyncio.create_task(self._recover())
        where = f"DMs and {len(self.channels)} channel(s)" if self.channels else "DMs"
        sharded = ""
        if self.shard_ids is not None:
            sharded = f" (shards {', '.join(map(str, self.shard_ids))} of {self.shard_count})"
        self.announce(f"Discord bot {self.user}{sharded} answers slash commands and {where}; "
                      "Ctrl-C stops it.")  # fmt: skip

    async def close(self) -> None:
        """Stop taking events (new ones are asked to come again), give the events being
        answered and the recovery up to ``stop_timeout_s`` to finish, then disconnect.
        What is cut off then stays an unfinished job, carried out at the next start."""
        self._stopping = True
        running = {t for t in (*self._handling, self._recovery) if t is not None and not t.done()}
        if running:
            _, left = await asyncio.wait(running, timeout=self.stop_timeout_s)
            if left:
                logger.warning("stopping with %d event(s) still being answered", len(left))
        await super().close()

    @contextlib.contextmanager
    def _answering(self) -> Iterator[None]:
        """The block answers an event: close() waits for it."""
        task = asyncio.current_task()
        assert task is not None
        self._handling.add(task)
        try:
            yield
        finally:
            self._handling.discard(task)

    async def _recover(self) -> None:
        """Carry out the jobs the last run left queued or running, sending each reply as
        its job is done."""

        async def deliver(delivery: Delivery) -> None:
            channel = self.get_partial_messageable(int(delivery.chat))
            try:
                await channel.send(**message_of(delivery.reply, int(delivery.user)))
            except SEND_ERRORS as exc:
                logger.warning("could not deliver a recovered reply (%s)", why(exc))

        try:
            await self.core.recover(deliver)
        except Exception:
            logger.exception("could not finish the jobs left from the last run")

    # -- what users send -------------------------------------------------------------
    async def on_result_button(self, interaction: discord.Interaction, command: str) -> None:
        await self.answer(interaction, self.command_turn(command))

    async def on_forget_answer(self, interaction: discord.Interaction, answer: str) -> None:
        """Yes or No to "forget everything?": the question becomes the answer."""
        if self._stopping:
            await self._refuse(interaction)
            return
        with self._answering():
            await interaction.response.defer()
            user, chat = str(interaction.user.id), str(interaction.channel_id)
            try:
                reply = await self.core.command(
                    user, chat, "forget", answer, update_id=f"dc:{interaction.id}"
                )
            except Exception:
                logger.exception("forget answer %s failed", interaction.id)
                reply = Reply(FAILED, error=True)
            if not reply.text:
                return
            try:
                await interaction.edit_original_response(
                    content=reply.text[:MAX_CONTENT], view=None
                )
            except SEND_ERRORS as exc:
                logger.warning("could not answer interaction %s (%s)", interaction.id, why(exc))

    async def _refuse(self, interaction: discord.Interaction) -> None:
        """An interaction that came while the bot stops: ask for it again later."""
        try:
            await interaction.response.send_message(STOPPING, ephemeral=True)
        except SEND_ERRORS as exc:
            logger.warning("could not answer interaction %s (%s)", interaction.id, why(exc))

    def command_turn(self, name: str) -> Turn:
        async def turn(user: str, chat: str, update_id: str) -> list[Reply]:
            return [await self.core.command(user, chat, name, update_id=update_id)]

        return turn

    async def edit_turns(
        self,
        user: str,
        chat: str,
        update_id: str,
        attachment: discord.Attachment | None,
        text: str,
        progress: StatusMessage | None = None,
    ) -> list[Reply]:
        """A photo, a text or both (photo first), as a message or /edit brings them."""
        replies = []
        if attachment is not None:
            refusal = self._refusal(attachment)
            if refusal:
                return [Reply(refusal, error=True)]

            async def download() -> bytes:
                """Called by the core in the chat's turn, once the flood limit let it through."""
                try:
                    return await attachment.read()
                except SEND_ERRORS as exc:
                    logger.warning("could not download an attachment (%s)", why(exc))
                    raise ImageError(
                        "I could not download that file; please send it again."
                    ) from None

            reply = await self.core.receive_photo(
                user, chat, download, attachment.filename, progress, update_id
            )
            replies.append(reply)
            if reply.error:
                return replies
        if text.strip():
            text_id = f"{update_id}:text" if attachment is not None else update_id
            replies.append(await self.core.receive_text(user, chat, text, progress, text_id))
        return replies or [Reply(EMPTY, error=True)]

    def _refusal(self, attachment: discord.Attachment) -> str | None:
        """Why an attachment is refused before it is downloaded, if it is."""
        if attachment.size > self.max_bytes:
            return (
                f"That file is too large ({attachment.size / 1e6:.1f} MB); "
                f"send a photo of at most {self.max_bytes / 1e6:.1f} MB."
            )
        kind = attachment.content_type
        if kind and not kind.startswith("image/"):
            return f"That file is not a photo ({kind.split(';')[0]}); send a JPEG, PNG or HEIC."
        return None

    async def on_message(self, message: discord.Message) -> None:
        in_dm = isinstance(message.channel, discord.DMChannel)
        if message.author.bot or not (in_dm or message.channel.id in self.channels):
            return
        reference = None if in_dm else message
        if self._stopping:
            replies = [Reply(STOPPING, error=True)]
            await self._send_replies(message, replies, reference)
            return
        with self._answering():
            status = StatusMessage(message.channel)
            user = str(message.author.id)
            try:
                replies = await self.edit_turns(
                    user, str(message.channel.id), f"dc:{message.id}",
                    message.attachments[0] if message.attachments else None, message.content,
                    status,
                )  # fmt: skip
            except Exception:
                logger.exception("message %s failed", message.id)
                replies = [Reply(FAILED, error=True)]
            await self._send_replies(message, replies, reference)
            await status.remove()

    async def _send_replies(
        self, message: discord.Message, replies: list[Reply], reference: discord.Message | None
    ) -> None:
        try:
            for reply in (r for r in replies if not r.empty):
                await message.channel.send(**message_of(reply, message.author.id),
                                           reference=reference, mention_author=False)  # fmt: skip
        except SEND_ERRORS as exc:
            logger.warning("could not answer message %s (%s)", message.id, why(exc))

    async def answer(
        self, interaction: discord.Interaction, turn: Turn, ephemeral: bool = False
    ) -> None:
        """Acknowledge at once (a render outlasts the 3 s Discord allows), then send each
        reply as a followup; with none to send, remove the "thinking" message."""
        if self._stopping:
            await self._refuse(interaction)
            return
        with self._answering():
            try:
                await interaction.response.defer(thinking=True, ephemeral=ephemeral)
            except SEND_ERRORS as exc:
                logger.warning(
                    "could not acknowledge interaction %s (%s)", interaction.id, why(exc)
                )
                return
            try:
                replies = await turn(
                    str(interaction.user.id), str(interaction.channel_id), f"dc:{interaction.id}"
                )
            except Exception:
                logger.exception("interaction %s failed", interaction.id)
                replies = [Reply(FAILED, error=True)]
            try:
                if all(reply.empty for reply in replies):
                    await interaction.delete_original_response()
                for reply in (r for r in replies if not r.empty):
                    kwargs = message_of(reply, interaction.user.id)
                    await interaction.followup.send(**kwargs, ephemeral=ephemeral)  # type: ignore[arg-type]
            except SEND_ERRORS as exc:
                logger.warning("could not answer interaction %s (%s)", interaction.id, why(exc))


async def run_bot(
    engine: Engine,
    token: str,
    *,
    channels: frozenset[int] = frozenset(),
    base_url: str = "",
    backend: str | None = None,
    announce: Callable[[str], object] = logger.info,
    shard_count: int | None = None,
    shard_ids: list[int] | None = None,
) -> None:
    """Serve Discord (shards ``shard_ids`` of ``shard_count``, see :func:`shards`) until
    SIGINT or SIGTERM; then close the client (it lets what runs finish, see
    :meth:`DiscordBot.close`), the queue and the store."""
    from chatface.engine.queue import make_queue
    from chatface.storage import Store

    store = Store.from_config(engine.config)
    queue = await make_queue(engine)
    core = ConversationCore(engine, store, queue, "discord", backend)
    bot = DiscordBot(core, channels=channels, base_url=base_url,
                     max_bytes=engine.config["photos.max_bytes"], announce=announce,
                     shard_count=shard_count, shard_ids=shard_ids)  # fmt: skip
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = asyncio.create_task(bot.start(token))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stopping.cancel()
        await bot.close()
        await asyncio.wait({running})
        await queue.close()
        core.close()
        store.close()
    _raise_for(running.exception(), base_url)


def _raise_for(error: BaseException | None, base_url: str) -> None:
    """Turn what stopped the client into one clear error (or nothing, for a clean stop)."""
    if error is None:
        return
    if isinstance(error, discord.LoginFailure):
        raise KeyStoreError(
            "Discord refused the bot token; check $DISCORD_BOT_TOKEN or `chatface keys set "
            "discord`."
        ) from None
    if isinstance(error, discord.PrivilegedIntentsRequired):
        raise ConfigError(
            "Answering in channels needs the Message Content intent: enable it for the bot in "
            "the Discord developer portal (Bot, Privileged Gateway Intents), or name no channels."
        ) from None
    if isinstance(error, aiohttp.ClientConnectionError | OSError):
        where = base_url or "discord.com"
        raise ChatFaceError(f"Cannot reach Discord at {where}: {error}") from None
    raise error

"""What the Discord bot shows: replies as messages, their buttons, status messages and
the commands' Chinese descriptions.

Buttons have custom ids that name the user they belong to (``cf:undo:<user id>``,
``cf:forget:yes:<user id>``, ...) and the dynamic items added at start-up answer them by
calling the bot (:class:`ButtonHandler`), so buttons under messages from before a restart
keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import time
from typing import Protocol, cast

import aiohttp
import discord
from discord import app_commands

from chatface.bots.conversation import COMMANDS, Reply

logger = logging.getLogger(__name__)

EDIT_INTERVAL_S = 1.0  # a status message is edited at most this often (Discord rate-limits)
MAX_CONTENT = 2000  # Discord's limit for a message's text
EDIT_ZH = "编辑照片中的人脸：附上照片，或说要改什么"
NOT_YOURS = "Only the person who asked can answer this."
RESULT_LABELS = {"undo": "Undo", "redo": "Redo", "original": "Original"}
# What talking to Discord raises: a refusal, or the connection closing (at shutdown).
SEND_ERRORS = (discord.HTTPException, aiohttp.ClientError)


def why(error: Exception) -> str:
    """A short, token-free reason for a log line."""
    if isinstance(error, discord.HTTPException):
        return f"HTTP {error.status}"
    return type(error).__name__


class ButtonHandler(Protocol):
    """What the bot does when a button is clicked."""

    async def on_result_button(self, interaction: discord.Interaction, command: str) -> None: ...

    async def on_forget_answer(self, interaction: discord.Interaction, answer: str) -> None: ...


def _handler(interaction: discord.Interaction) -> ButtonHandler:
    return cast(ButtonHandler, interaction.client)


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"cf:(?P<command>undo|redo|original)(?::(?P<user>[0-9]+))?",
):
    """Undo, Redo or Original under a result. It acts on the session of whoever clicks,
    so the custom id names the result's owner and only they may click; ids without one
    (sent before owners were named) act for whoever clicks."""

    def __init__(self, command: str, user_id: int | None) -> None:
        owner = "" if user_id is None else f":{user_id}"
        super().__init__(
            discord.ui.Button(label=RESULT_LABELS[command], custom_id=f"cf:{command}{owner}")
        )
        self.command, self.user_id = command, user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> ResultButton:
        return cls(match["command"], int(match["user"]) if match["user"] else None)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if self.user_id in (None, interaction.user.id):
            return True
        text = f"These buttons belong to <@{self.user_id}>'s photo; send your own photo to edit it."
        await interaction.response.send_message(text, ephemeral=True)
        return False

    async def callback(self, interaction: discord.Interaction) -> None:
        await _handler(interaction).on_result_button(interaction, self.command)


class ForgetAnswer(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"cf:forget:(?P<answer>yes|no):(?P<user>[0-9]+)",
):
    """Yes or No under "forget everything?"; the asker's id is in the custom id, so that
    nobody else in a channel can answer for them."""

    def __init__(self, answer: str, user_id: int) -> None:
        yes = answer == "yes"
        super().__init__(
            discord.ui.Button(
                label="Yes, forget me" if yes else "No",
                style=discord.ButtonStyle.danger if yes else discord.ButtonStyle.secondary,
                custom_id=f"cf:forget:{answer}:{user_id}",
            )
        )
        self.answer, self.user_id = answer, user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> ForgetAnswer:
        return cls(match["answer"], int(match["user"]))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.user_id:
            return True
        await interaction.response.send_message(NOT_YOURS, ephemeral=True)
        return False

    async def callback(self, interaction: discord.Interaction) -> None:
        await _handler(interaction).on_forget_answer(interaction, self.answer)


def _laid_out(view: discord.ui.View) -> discord.ui.View:
    """``view`` stopped, so that it only lays out its buttons: the dynamic items added at
    start-up answer the clicks, and a live copy per message would pile up in discord.py."""
    view.stop()
    return view


def message_of(reply: Reply, user_id: int) -> dict[str, object]:
    """Keyword arguments for ``send`` that show ``reply``, with the buttons it needs."""
    kwargs: dict[str, object] = {"content": reply.text[:MAX_CONTENT]}
    if reply.image is not None:
        extension = (reply.image_type or "image/png").rpartition("/")[2]
        kwargs["file"] = discord.File(io.BytesIO(reply.image), filename=f"chatface.{extension}")
    if reply.confirm == "forget":
        question = discord.ui.View(timeout=None)
        question.add_item(ForgetAnswer("yes", user_id))
        question.add_item(ForgetAnswer("no", user_id))
        kwargs["view"] = _laid_out(question)
    elif reply.image is not None and reply.plan is not None and not reply.error:
        buttons = discord.ui.View(timeout=None)
        for command in RESULT_LABELS:
            buttons.add_item(ResultButton(command, user_id))
        kwargs["view"] = _laid_out(buttons)
    return kwargs


class StatusMessage:
    """One status message per job, sent at the first progress report, edited at most
    once a second, and deleted once the answer is there."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel
        self.message: discord.Message | None = None
        self._loop = asyncio.get_running_loop()
        self._last = float("-inf")
        self._pending: asyncio.Task[None] | None = None

    def __call__(self, done: int, total: int) -> None:
        """The core's progress callback (on the event loop)."""
        now = time.monotonic()
        if (self._pending and not self._pending.done()) or now - self._last < EDIT_INTERVAL_S:
            return
        self._last = now
        self._pending = self._loop.create_task(self._show(f"Working… {done}/{total}"))

    async def _show(self, text: str) -> None:
        try:
            if self.message is None:
                self.message = await self.channel.send(text)
            else:
                await self.message.edit(content=text)
        except SEND_ERRORS as exc:
            logger.warning("could not update a status message (%s)", why(exc))

    async def remove(self) -> None:
        if self._pending is not None:
            await self._pending
        if self.message is not None:
            with contextlib.suppress(*SEND_ERRORS):
                await self.message.delete()


class ChineseDescriptions(app_commands.Translator):
    """The commands' descriptions for Discord clients set to Chinese."""

    TEXTS = {c.name: c.description_zh for c in COMMANDS} | {"edit": EDIT_ZH}

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        chinese = locale in (discord.Locale.chinese, discord.Locale.taiwan_chinese)
        where = app_commands.TranslationContextLocation.command_description
        if not chinese or context.location is not where:
            return None
        return self.TEXTS.get(context.data.name)

"""The status message a Telegram chat sees while its photo is read or its edit renders."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from telegram.constants import ChatAction
from telegram.error import TelegramError

if TYPE_CHECKING:
    from telegram import Bot, Message

logger = logging.getLogger(__name__)

WORKING = "Working on it…"


class StatusMessage:
    """The one status message of a job: sent at the first progress report, edited as
    steps complete (at most one edit per ``interval_s``), deleted when the job ends.

    A job that reports no progress (a stored undo, a refused photo) shows none.
    """

    def __init__(self, bot: Bot, chat_id: int, interval_s: float, label: str) -> None:
        self._bot, self._chat_id, self._interval_s, self._label = bot, chat_id, interval_s, label
        self._text = WORKING
        self._changed, self._ended = asyncio.Event(), asyncio.Event()
        self._task: asyncio.Task[Message | None] | None = None

    def progress(self, done: int, total: int) -> None:
        """The core's progress callback (on the event loop)."""
        if self._ended.is_set():
            return
        self._text = f"{self._label} {done}/{total}"
        self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._show())

    async def _show(self) -> Message | None:
        loop = asyncio.get_running_loop()
        try:
            message = await self._bot.send_message(self._chat_id, WORKING)
            await self._bot.send_chat_action(self._chat_id, ChatAction.UPLOAD_PHOTO)
            shown, edited = WORKING, loop.time()
            while True:
                await self._changed.wait()
                self._changed.clear()
                ready_at = edited + self._interval_s
                if not self._ended.is_set() and loop.time() < ready_at:
                    with contextlib.suppress(TimeoutError):  # sooner when the job ends
                        await asyncio.wait_for(self._ended.wait(), ready_at - loop.time())
                if loop.time() >= ready_at and self._text != shown:
                    await message.edit_text(self._text)
                    shown, edited = self._text, loop.time()
                if self._ended.is_set():
                    return message
        except TelegramError as exc:  # a status is a courtesy: the reply still goes out
            logger.warning("status message in a chat failed: %s", exc)
            return None

    async def close(self) -> None:
        self._ended.set()
        self._changed.set()
        if self._task is not None and (message := await self._task) is not None:
            with contextlib.suppress(TelegramError):
                await message.delete()

"""What the conversation core answers: replies, the commands, the texts users see, and the
per-user flood limit."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from chatface.engine.types import EditPlan

HELP = (
    "Send a photo with a face, then tell me what to change: 'make her smile', 'add glasses "
    "and make him older', 'a bit more', 'less'. Commands: /undo, /redo, /reset, /original, "
    "/attributes, /history, /identity, /status, /cancel, /forget, /help."
)
WELCOME = "Hi! I edit the face in your photo by chat. " + HELP
NO_FACE = "Send me a photo with a face first."
EMPTY_TEXT = "Say what to change, e.g. 'make her smile' or 'add glasses'."
TOO_FAST = "You are sending messages faster than I can keep up with; please wait a few seconds."
FORGET_ASK = (
    "This deletes every photo, edit and message I have stored for you, for good. Are you sure?"
)
FAILED = "Sorry, something went wrong with this one; please try again."


@dataclass(frozen=True)
class Command:
    """A bot command, with its menu descriptions in English and Chinese."""

    name: str
    description: str
    description_zh: str


COMMANDS = (
    Command("start", "How this bot works", "使用说明"),
    Command("help", "What you can say", "可以说什么"),
    Command("attributes", "What I can change", "可以修改的属性"),
    Command("undo", "Undo the last edit", "撤销上一步"),
    Command("redo", "Redo what you undid", "重做"),
    Command("reset", "Back to the original, as a new step", "恢复原图"),
    Command("original", "Show the original photo", "查看原图"),
    Command("history", "The edits so far", "编辑历史"),
    Command("identity", "How much the edit changed who it shows", "身份相似度"),
    Command("status", "Where your edit is in the queue", "排队状态"),
    Command("cancel", "Cancel your waiting edit", "取消等待中的编辑"),
    Command("forget", "Delete everything stored about you", "删除你的全部数据"),
)


@dataclass(frozen=True)
class Reply:
    """What to send back: a short text, and an image (encoded once) when there is one.

    A reply with no text and no image means: send nothing (a redelivered update, a render
    replaced by the same user's newer message, a repeated flood warning). ``error``: the
    text says why the request could not be done. ``confirm``: the command to confirm
    with Yes/No buttons, which send ``command(name, "yes")`` or ``"no"``.
    """

    text: str
    image: bytes | None = None
    image_type: str | None = None  # "image/png", ...
    plan: EditPlan | None = None
    error: bool = False
    confirm: str | None = None

    @property
    def empty(self) -> bool:
        return not self.text and self.image is None


SILENT = Reply("")


@dataclass(frozen=True)
class Delivery:
    """A reply owed to a chat after a restart (see :meth:`ConversationCore.recover`)."""

    user: str
    chat: str
    reply: Reply


SWEEP_AT = 10_000  # users tracked before the quiet ones are dropped


class RateLimit:
    """At most ``per_minute`` messages per user in any 60 s; one warning per burst."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._warned: dict[str, float] = {}

    def check(self, user: str) -> Reply | None:
        """None when the message may go on, else the reply (a warning, or silence)."""
        if self.per_minute <= 0:
            return None
        now = time.monotonic()
        if len(self._seen) > SWEEP_AT:  # forget people quiet for a minute: memory stays bounded
            self._seen = {u: s for u, s in self._seen.items() if now - s[-1] < 60}
            self._warned = {u: t for u, t in self._warned.items() if now - t < 60}
        seen = self._seen.setdefault(user, deque())
        while seen and now - seen[0] >= 60:
            seen.popleft()
        if len(seen) < self.per_minute:
            seen.append(now)
            return None
        if now - self._warned.get(user, float("-inf")) < 60:
            return SILENT
        self._warned[user] = now
        return Reply(TOO_FAST, error=True)

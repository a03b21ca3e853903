"""Bot API JSON for the fake Telegram server: users, chats, entities, photos, errors.

Kept apart from :mod:`tests.fakes.telegram_server` so that module holds only the HTTP
side and the state. Everything here builds plain dicts in the shapes the Bot API
documents (https://core.telegram.org/bots/api#available-types), so python-telegram-bot
parses them into its own objects.
"""

from __future__ import annotations

import html.parser
import io
import json
import re
from typing import Any

from PIL import Image, UnidentifiedImageError

# Telegram's own limits, enforced so a bot that breaks them fails here as it would live.
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
THUMBNAIL_SIDES = (90, 320, 800)  # the smaller PhotoSize entries Telegram adds to a photo
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})  # fmt: skip
COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{1,32})?(?![^\s])")

# Parameters that are strings even when their text looks like JSON ("123", "true"):
# python-telegram-bot sends str values as they are and JSON-encodes everything else.
STRING_PARAMS = frozenset({
    "text", "caption", "parse_mode", "callback_query_id", "file_id", "inline_message_id",
    "language_code", "action", "photo", "document", "url", "data", "description",
    "short_description", "name", "business_connection_id", "emoji", "message_effect_id",
    "secret_token", "ip_address",
})  # fmt: skip


class ApiError(Exception):
    """A Bot API error answer: raised by method handlers, turned into JSON by the server."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code}
        body["description"] = self.description
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


def decode_param(name: str, value: str) -> Any:
    """One form field as the Bot API reads it: JSON unless it is a plain string parameter."""
    if name in STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id="@channelname"


def bot_user(token: str, username: str) -> dict[str, Any]:
    """What getMe answers; the id is the token's numeric part, as on Telegram."""
    return {
        "id": int(token.split(":", 1)[0]),
        "is_bot": True,
        "first_name": "ChatFace Test Bot",
        "username": username,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


def user(user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": f"User{user_id}",
        "username": f"user{user_id}",
        "language_code": "en",
    }


def chat(chat_id: int) -> dict[str, Any]:
    """A private chat for a positive id, a (super)group for a negative one."""
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}",
                "username": f"user{chat_id}"}  # fmt: skip
    kind = "supergroup" if chat_id < -1_000_000_000_000 else "group"
    return {"id": chat_id, "type": kind, "title": f"Group {-chat_id}"}


def utf16_len(text: str) -> int:
    """Entity offsets and lengths count UTF-16 code units, not Python characters."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[dict[str, Any]]:
    """The bot_command entities Telegram attaches to a message text."""
    return [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]),
         "length": utf16_len(m.group())}
        for m in COMMAND.finditer(text)
    ]  # fmt: skip


def image_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError):
        return None


def thumbnails(data: bytes) -> list[tuple[int, int, bytes]]:
    """Smaller JPEG copies of an image, (width, height, bytes), smallest first."""
    out = []
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        for side in THUMBNAIL_SIDES:
            if side >= max(image.size):
                break
            small = image.convert("RGB")
            small.thumbnail((side, side))
            buffer = io.BytesIO()
            small.save(buffer, format="JPEG", quality=80)
            out.append((*small.size, buffer.getvalue()))
    return out


HTML_ENTITIES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler", "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote",
}  # fmt: skip


class _TelegramHTML(html.parser.HTMLParser):
    """parse_mode=HTML as Telegram reads it: the tags it knows become entities."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.open: list[tuple[str, int, dict[str, str | None]]] = []
        self.entities: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_ENTITIES:
            raise bad_request(f'can\'t parse entities: Unsupported start tag "{tag}"')
        self.open.append((tag, utf16_len(self.text), dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1][0] != tag:
            raise bad_request(f'can\'t parse entities: Unmatched end tag "{tag}"')
        _, start, attrs = self.open.pop()
        length = utf16_len(self.text) - start
        if length:
            entity = {"type": HTML_ENTITIES[tag], "offset": start, "length": length}
            if tag == "a":
                entity["url"] = attrs.get("href") or ""
            self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.text += data


def formatted(text: Any, parse_mode: Any, entities: Any) -> tuple[str, list | None]:
    """The text and entities Telegram stores: HTML markup becomes entities (MarkdownV2 and
    Markdown are kept as sent: this fake does not parse them)."""
    text = "" if text is None else str(text)
    if str(parse_mode).lower() != "html":
        return text, entities or None
    parser = _TelegramHTML()
    parser.feed(text)
    parser.close()
    if parser.open:
        tag = parser.open[-1][0]
        raise bad_request(f"can't parse entities: Can't find end tag corresponding to \"{tag}\"")
    return parser.text, sorted(parser.entities, key=lambda e: e["offset"]) or None


def text_content(p: dict[str, Any]) -> dict[str, Any]:
    """``text`` and ``entities`` (None when there are none) of sendMessage/editMessageText."""
    text, entities = formatted(p.get("text"), p.get("parse_mode"), p.get("entities"))
    if not text.strip():
        raise bad_request("message text is empty")
    if utf16_len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    return {"text": text, "entities": entities}


def caption_content(p: dict[str, Any]) -> dict[str, Any]:
    caption, entities = formatted(p.get("caption"), p.get("parse_mode"), p.get("caption_entities"))
    if utf16_len(caption) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    return {"caption": caption or None, "caption_entities": entities}


def inline_keyboard(markup: Any) -> dict[str, Any] | None:
    """The markup a sent message echoes back: only inline keyboards, checked like Telegram."""
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return None  # reply keyboards and keyboard removals are not part of the message
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request("can't parse inline keyboard button: InlineKeyboardButton expected")
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise bad_request("can't parse inline keyboard button: Text must be non-empty")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                raise bad_request("BUTTON_DATA_INVALID")
    return markup


def callback_datas(message: dict[str, Any]) -> list[str]:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


def update_kind(update: dict[str, Any]) -> str:
    return next(key for key in update if key != "update_id")

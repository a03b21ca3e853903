"""The Bot API methods of the fake Telegram server, apart from getUpdates and webhooks.

Each handler takes the decoded parameters and the uploaded files and returns the
``result`` Telegram would send, or raises :class:`~tests.fakes.telegram_objects.ApiError`
with Telegram's own error text. The server calls them holding its lock, so they read and
change its state freely. Split from :mod:`tests.fakes.telegram_server` to keep both short.
"""

from __future__ import annotations

import itertools
import json
import mimetypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes import telegram_objects as tg
from tests.fakes.telegram_calls import UploadedFile

Params = dict[str, Any]
Files = dict[str, UploadedFile]
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)


@dataclass
class StoredFile:
    """A file Telegram holds: what getFile describes and /file/bot<token>/ serves."""

    file_id: str
    file_unique_id: str
    kind: str  # "photo" or "document"
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None


class MethodsMixin:
    """Handlers and file bookkeeping; :class:`FakeTelegramServer` provides the state."""

    bot: dict[str, Any]
    _lock: threading.RLock
    _ids: itertools.count[int]
    _message_ids: dict[int, itertools.count[int]]
    messages: dict[tuple[int, int], dict[str, Any]]
    known_chats: set[int]
    files: dict[str, StoredFile]
    photo_sets: dict[str, list[dict[str, Any]]]
    callback_queries: dict[str, dict[str, Any]]
    callback_answers: dict[str, dict[str, Any]]
    commands: dict[tuple[str, str], list[dict[str, Any]]]

    def handlers(self) -> dict[str, Callable[[Params, Files], Any]]:
        """Lower-case method name -> handler (Telegram's method names ignore case)."""
        return {
            "getme": lambda p, f: self.bot,
            "getupdates": lambda p, f: None,  # async: the server runs it itself
            "getfile": self._get_file,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "sendchataction": self._send_chat_action,
            "setmycommands": self._set_my_commands,
            "getmycommands": lambda p, f: self.commands.get(_scope_key(p), []),
            "deletemycommands": lambda p, f: self.commands.pop(_scope_key(p), None) or True,
        }  # fmt: skip

    # -- files ------------------------------------------------------------------------------

    def _new_file(self, kind: str, data: bytes, suffix: str, **extra: Any) -> StoredFile:
        n = next(self._ids)
        folder = "photos" if kind == "photo" else "documents"
        stored = StoredFile(f"fake-file-{n:06d}", f"fake-unique-{n:06d}", kind, data,
                            f"{folder}/file_{n}{suffix}", **extra)  # fmt: skip
        self.files[stored.file_id] = stored
        return stored

    def _store_photo(self, data: bytes) -> list[dict[str, Any]]:
        """PhotoSize entries, smallest first; the largest serves ``data`` unchanged."""
        size = tg.image_size(data)
        if size is None:
            raise tg.bad_request("IMAGE_PROCESS_FAILED")
        sizes = []
        for width, height, small in [*tg.thumbnails(data), (*size, data)]:
            stored = self._new_file("photo", small, ".jpg")
            sizes.append({"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                          "width": width, "height": height, "file_size": len(small)})  # fmt: skip
        for entry in sizes:
            self.photo_sets[entry["file_id"]] = sizes
        return sizes

    def _store_document(self, data: bytes, file_name: str | None, mime_type: str):
        suffix = mimetypes.guess_extension(mime_type) or ""
        if file_name and "." in file_name:
            suffix = "." + file_name.rsplit(".", 1)[1]
        stored = self._new_file("document", data, suffix, file_name=file_name,
                                mime_type=mime_type)  # fmt: skip
        document = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                    "mime_type": mime_type, "file_size": len(data)}  # fmt: skip
        if file_name:
            document["file_name"] = file_name
        return document

    def _get_file(self, p: Params, f: Files) -> dict[str, Any]:
        stored = self.files.get(str(p.get("file_id")))
        if stored is None:
            raise tg.bad_request("invalid file_id")
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data), "file_path": stored.file_path}  # fmt: skip

    def _input_file(self, p: Params, f: Files, param: str) -> UploadedFile | StoredFile:
        """An upload (a part named ``param`` or the one ``attach://`` names) or a file_id."""
        value = p.get(param)
        if isinstance(value, str) and value.startswith("attach://"):
            value = f.get(value.removeprefix("attach://"))
        elif param in f:
            value = f[param]
        if value is None:
            raise tg.bad_request(f"there is no {param} in the request")
        if isinstance(value, str):
            if value not in self.files:
                raise tg.bad_request("wrong file identifier/HTTP URL specified")
            return self.files[value]
        return value

    # -- messages ---------------------------------------------------------------------------

    def _new_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _chat_id(self, p: Params) -> int:
        chat_id = p.get("chat_id")
        if chat_id not in self.known_chats:
            raise tg.bad_request("chat not found")
        return int(chat_id)

    def _bot_message(self, p: Params, **content: Any) -> dict[str, Any]:
        chat_id = self._chat_id(p)
        message: dict[str, Any] = {"message_id": 0, "from": self.bot, "chat": tg.chat(chat_id),
                                   "date": int(time.time())}  # fmt: skip
        message.update((k, v) for k, v in content.items() if v is not None)
        reply = p.get("reply_parameters") or {}
        reply_to = reply.get("message_id", p.get("reply_to_message_id"))
        if reply_to is not None:
            replied = self.messages.get((chat_id, reply_to))
            if replied is not None:
                message["reply_to_message"] = dict(replied)
            elif not reply.get("allow_sending_without_reply"):
                raise tg.bad_request("message to be replied not found")
        if markup := tg.inline_keyboard(p.get("reply_markup")):
            message["reply_markup"] = markup
        message["message_id"] = self._new_message_id(chat_id)
        self.messages[(chat_id, message["message_id"])] = message
        return dict(message)

    def _send_message(self, p: Params, f: Files) -> dict[str, Any]:
        return self._bot_message(p, **tg.text_content(p))

    def _send_photo(self, p: Params, f: Files) -> dict[str, Any]:
        caption = tg.caption_content(p)
        photo = self._input_file(p, f, "photo")
        if getattr(photo, "kind", "photo") != "photo":
            raise tg.bad_request("type of file mismatch")
        self._chat_id(p)  # before storing anything
        sizes = (self.photo_sets[photo.file_id] if hasattr(photo, "file_id")
                 else self._store_photo(photo.data))  # fmt: skip
        return self._bot_message(p, photo=sizes, **caption)

    def _send_document(self, p: Params, f: Files) -> dict[str, Any]:
        caption = tg.caption_content(p)
        doc = self._input_file(p, f, "document")
        self._chat_id(p)
        if hasattr(doc, "file_id"):  # a re-send
            if doc.kind != "document":
                raise tg.bad_request("type of file mismatch")
            document = {"file_id": doc.file_id, "file_unique_id": doc.file_unique_id,
                        "file_name": doc.file_name, "mime_type": doc.mime_type,
                        "file_size": len(doc.data)}  # fmt: skip
            document = {k: v for k, v in document.items() if v is not None}
        else:
            document = self._store_document(doc.data, doc.filename, doc.content_type)
        return self._bot_message(p, document=document, **caption)

    def _editable(self, p: Params) -> dict[str, Any]:
        if "inline_message_id" in p:
            raise tg.bad_request("the fake server has no inline messages")
        message = self.messages.get((p.get("chat_id"), p.get("message_id")))
        if message is None:
            raise tg.bad_request("message to edit not found")
        if message["from"]["id"] != self.bot["id"]:
            raise tg.bad_request("message can't be edited")
        return message

    def _apply_edit(self, message: dict[str, Any], p: Params, **content: Any) -> dict:
        # Telegram removes the inline keyboard when an edit does not repeat it.
        markup = tg.inline_keyboard(p.get("reply_markup"))
        if all(message.get(k) == v for k, v in content.items()) and (
            message.get("reply_markup") == markup
        ):
            raise tg.bad_request(NOT_MODIFIED)
        for key, value in content.items():
            message.pop(key, None)
            if value is not None:
                message[key] = value
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        return dict(message)

    def _edit_message_text(self, p: Params, f: Files) -> dict[str, Any]:
        message = self._editable(p)
        if "text" not in message:
            raise tg.bad_request("there is no text in the message to edit")
        return self._apply_edit(message, p, **tg.text_content(p))

    def _edit_message_caption(self, p: Params, f: Files) -> dict[str, Any]:
        message = self._editable(p)
        if "text" in message:
            raise tg.bad_request("there is no caption in the message to edit")
        return self._apply_edit(message, p, **tg.caption_content(p))

    def _edit_message_reply_markup(self, p: Params, f: Files) -> dict[str, Any]:
        return self._apply_edit(self._editable(p), p)

    def _delete_message(self, p: Params, f: Files) -> bool:
        if self.messages.pop((p.get("chat_id"), p.get("message_id")), None) is None:
            raise tg.bad_request("message to delete not found")
        return True

    def _answer_callback_query(self, p: Params, f: Files) -> bool:
        query_id = p.get("callback_query_id")
        if query_id not in self.callback_queries or query_id in self.callback_answers:
            raise tg.bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(p.get("text", ""))) > 200:
            raise tg.bad_request("MESSAGE_TOO_LONG")
        self.callback_answers[query_id] = p
        return True

    def _send_chat_action(self, p: Params, f: Files) -> bool:
        self._chat_id(p)
        if p.get("action") not in tg.CHAT_ACTIONS:
            raise tg.bad_request("wrong parameter action in request")
        return True

    def _set_my_commands(self, p: Params, f: Files) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise tg.bad_request("can't parse BotCommand array")
        for command in commands:
            name, description = command.get("command", ""), command.get("description", "")
            if not (1 <= len(name) <= 32 and name.replace("_", "").isalnum()
                    and name == name.lower() and 1 <= len(description) <= 256):  # fmt: skip
                raise tg.bad_request("BOT_COMMAND_INVALID")
        self.commands[_scope_key(p)] = commands
        return True


def _scope_key(p: Params) -> tuple[str, str]:
    scope = p.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(p.get("language_code", ""))

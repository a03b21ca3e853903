"""A fake Telegram Bot API: an aiohttp app on 127.0.0.1, in a thread of its own.

It stands in for ``api.telegram.org`` so the real python-telegram-bot (PTB) code runs
end to end over real HTTP. Point a bot at it with the two base URLs; PTB appends the
token, so requests arrive as ``/bot<token>/<method>`` and file downloads as
``/file/bot<token>/<file_path>``::

    with FakeTelegramServer() as server:
        app = (ApplicationBuilder().token(TOKEN)
               .base_url(server.base_url)             # f"{server.url}/bot"
               .base_file_url(server.base_file_url)   # f"{server.url}/file/bot"
               .build())

Methods (names are case-insensitive, as on Telegram): getMe, getUpdates (long polling:
``offset`` confirms and drops older updates, ``timeout`` waits for a pushed one, a second
poll ends the first with 409 Conflict), setWebhook, deleteWebhook, getWebhookInfo, getFile,
sendMessage, sendPhoto, sendDocument (multipart uploads, or a ``file_id`` re-send),
editMessageText, editMessageCaption, editMessageReplyMarkup, deleteMessage,
answerCallbackQuery, sendChatAction, setMyCommands, getMyCommands, deleteMyCommands.
They check what Telegram checks where bots commonly go wrong (unknown chat: only chats a
simulated user wrote in; empty or too long text; "message is not modified"; bad callback
data; an upload that is no image; bad ``parse_mode=HTML`` markup, which becomes entities
as on Telegram; MarkdownV2 is kept as sent, unchecked) and answer Telegram's error texts.
Any other method answers 404 ``Not Found: method X``; a wrong token answers 401
``Unauthorized``.

Users are simulated with :meth:`~FakeTelegramServer.user_sends_text`,
``user_sends_command``, ``user_sends_photo`` and ``user_presses_button``; each queues
an update and returns its ``update_id``. Every request is recorded in order as a
:class:`Call`: the method, the parameters decoded as Telegram reads them (JSON fields
such as ``reply_markup`` as dicts), the uploaded files (bytes, file name, content
type), the HTTP status and the JSON answered; each webhook delivery attempt is one too,
to the pseudo-method ``webhook``. The token is never recorded or logged
(aiohttp's access log is off because the token is in every path). ``wait_for`` (async)
and ``wait_for_sync`` block, event-driven, until a matching call has been answered.
``fail_next``/``rate_limit`` script error answers (e.g. 429 with ``retry_after``).

What PTB 22 calls: ``Application.initialize`` -> getMe; ``updater.start_polling`` ->
deleteWebhook, then getUpdates(offset, timeout) in a loop; ``updater.stop`` cancels the
pending poll (the fake sees the hang-up, status 499) and confirms with one last
getUpdates(offset, timeout=0). ``updater.start_webhook`` -> setWebhook (then it starts
listening), and the fake POSTs the updates to the webhook; ``updater.stop`` stops
listening and leaves the webhook set, so Telegram keeps the updates meanwhile. Plain
fields arrive form-encoded, JSON-encoded unless they are strings; with files,
multipart/form-data with the file part named after the parameter (``photo``,
``document``) and the file name and MIME type PTB guessed.

The Bot API JSON is built in :mod:`tests.fakes.telegram_objects`, the methods live in
:mod:`tests.fakes.telegram_methods`, webhook mode in :mod:`tests.fakes.telegram_webhook`,
the call log in :mod:`tests.fakes.telegram_calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes import telegram_objects as tg
from tests.fakes.loop_thread import LoopThreadServer
from tests.fakes.telegram_calls import Call, CallLog, UploadedFile
from tests.fakes.telegram_methods import MethodsMixin, StoredFile
from tests.fakes.telegram_webhook import UNREACHABLE, WEBHOOK, Webhook, WebhookMixin

__all__ = [
    "TOKEN", "UNREACHABLE", "WEBHOOK", "Call", "FakeTelegramServer", "StoredFile",
    "UploadedFile", "Webhook",
]  # fmt: skip

TOKEN = "123456789:AAFakeTokenForTestsOnly-0123456789ab"
BOT_USERNAME = "chatface_test_bot"
CLIENT_GONE = 499  # the status a call gets when the client hung up before the answer


@dataclass
class _Poll:
    wake: asyncio.Event
    superseded: bool = False


class FakeTelegramServer(CallLog, MethodsMixin, WebhookMixin, LoopThreadServer):
    """Start with :meth:`start` (or ``with``), stop with :meth:`stop`. A failed webhook
    delivery is retried after the pauses in ``webhook_retry_s`` (the last one repeats)."""

    thread_name = "fake-telegram"

    def __init__(
        self, token: str = TOKEN, bot_username: str = BOT_USERNAME,
        webhook_retry_s: tuple[float, ...] = (0.05, 0.2, 0.5),
    ) -> None:  # fmt: skip
        super().__init__()
        self.token = token
        self.bot = tg.bot_user(token, bot_username)
        self.port = 0
        self.retry_delays_s = webhook_retry_s
        # State; every field below is guarded by _lock (tests and the server thread share it).
        self._updates: list[dict[str, Any]] = []  # not yet confirmed by an offset
        self.deliveries: list[list[int]] = []  # update ids per getUpdates answer
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}  # (chat, message id)
        self.known_chats: set[int] = set()  # chats a user wrote in: the bot may write there
        self.files: dict[str, StoredFile] = {}
        self.photo_sets: dict[str, list[dict[str, Any]]] = {}  # any size's file_id -> sizes
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self.callback_answers: dict[str, dict[str, Any]] = {}  # query id -> answer params
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (scope, lang)
        self.webhook: Webhook | None = None
        self._scripted: dict[str, deque[tg.ApiError]] = {}
        self._next_update_id = 100_000
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._ids = itertools.count(1)
        self._poll: _Poll | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._webhook_changed = asyncio.Event()
        self._delivery: asyncio.Task[None] | None = None

    # -- URLs -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url``: PTB appends the token and ``/<method>``."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url``: PTB appends ``<token>/<file_path>``."""
        return f"{self.url}/file/bot"

    # -- what tests read --------------------------------------------------------------------

    def pending_updates(self) -> list[int]:
        """Ids of updates the bot has not confirmed yet (with a higher getUpdates offset)."""
        with self._lock:
            return [u["update_id"] for u in self._updates]

    def bot_messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent and did not delete, as they stand now: edits applied,
        HTML markup turned into entities (``calls`` keep the parameters as sent)."""
        with self._lock:
            return [
                m for (chat, _), m in sorted(self.messages.items())
                if m["from"]["id"] == self.bot["id"] and chat_id in (None, chat)
            ]  # fmt: skip

    def replace_buttons(self, chat_id: int, message_id: int, markup: dict[str, Any]) -> None:
        """Give a message of the bot other inline buttons, e.g. those an older version of
        the bot sent."""
        with self._lock:
            self.messages[(chat_id, message_id)]["reply_markup"] = tg.inline_keyboard(markup)

    def file_bytes(self, file_id: str) -> bytes:
        with self._lock:
            return self.files[file_id].data

    # -- scripting errors -------------------------------------------------------------------

    def fail_next(
        self, method: str, code: int, description: str, *, times: int = 1,
        parameters: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """The next ``times`` calls to ``method`` answer this error instead of working."""
        error = tg.ApiError(code, description, parameters)
        with self._lock:
            self._scripted.setdefault(method.lower(), deque()).extend([error] * times)

    def rate_limit(self, method: str, retry_after: float = 1, *, times: int = 1) -> None:
        """Flood control: 429 with ``parameters.retry_after`` (seconds; Telegram sends ints)."""
        text = f"Too Many Requests: retry after {retry_after}"
        self.fail_next(method, 429, text, times=times, parameters={"retry_after": retry_after})

    # -- simulated users --------------------------------------------------------------------

    def push_update(self, payload: dict[str, Any]) -> int:
        """Queue a raw update (``{"message": {...}}`` etc.); returns its ``update_id``."""
        with self._lock:
            self._next_update_id += 1
            update = {"update_id": self._next_update_id, **payload}
            self._updates.append(update)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake)
        return update["update_id"]

    def user_sends_text(self, chat_id: int, user_id: int, text: str) -> int:
        """A text message; commands in it get bot_command entities, as Telegram adds them."""
        message = self._user_message(chat_id, user_id, text=text)
        if entities := tg.command_entities(text):
            message["entities"] = entities
        return self.push_update({"message": message})

    def user_sends_command(self, chat_id: int, user_id: int, command: str) -> int:
        """``command`` such as ``"/undo"`` or ``"/start payload"``."""
        if not tg.command_entities(command.split(" ", 1)[0]):
            raise ValueError(f"not a bot command: {command!r}")
        return self.user_sends_text(chat_id, user_id, command)

    def user_sends_photo(
        self, chat_id: int, user_id: int, image_bytes: bytes, as_document: bool = False,
        caption: str | None = None, file_name: str = "photo.jpg", mime_type: str = "image/jpeg",
    ) -> int:  # fmt: skip
        """A photo (several PhotoSize entries, the largest holding ``image_bytes`` as given),
        or with ``as_document`` a Document with ``file_name`` and ``mime_type``."""
        with self._lock:
            if as_document:
                content = {"document": self._store_document(image_bytes, file_name, mime_type)}
            else:
                content = {"photo": self._store_photo(image_bytes)}
        if caption is not None:
            content["caption"] = caption
        return self.push_update({"message": self._user_message(chat_id, user_id, **content)})

    def user_presses_button(self, chat_id: int, user_id: int, message_id: int, data: str) -> int:
        """A callback_query from an inline button ``data`` on a message the bot sent."""
        with self._lock:
            message = self.messages.get((chat_id, message_id))
            if message is None or message["from"]["id"] != self.bot["id"]:
                raise ValueError(f"the bot sent no message {message_id} to chat {chat_id}")
            if data not in tg.callback_datas(message):
                raise ValueError(f"message {message_id} has no button {data!r}: {message}")
            query = {
                "id": f"{next(self._ids)}{user_id}", "from": tg.user(user_id),
                "message": dict(message), "chat_instance": f"-{chat_id}42", "data": data,
            }  # fmt: skip
            self.callback_queries[query["id"]] = query
        return self.push_update({"callback_query": query})

    def _user_message(self, chat_id: int, user_id: int, **content: Any) -> dict[str, Any]:
        with self._lock:
            self.known_chats.add(chat_id)
            message = {
                "message_id": self._new_message_id(chat_id), "from": tg.user(user_id),
                "chat": tg.chat(chat_id), "date": int(time.time()), **content,
            }  # fmt: skip
            self.messages[(chat_id, message["message_id"])] = message
            return dict(message)

    # -- the HTTP side ----------------------------------------------------------------------

    def _answer(self, call: Call, status: int, body: dict[str, Any]) -> web.Response:
        self.answered(call, status, body)
        return web.json_response(body, status=status)

    async def _read_params(self, request: web.Request):
        params: dict[str, Any] = {k: tg.decode_param(k, v) for k, v in request.query.items()}
        files: dict[str, UploadedFile] = {}
        if request.can_read_body:
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    data = value.file.read()
                    files[name] = UploadedFile(value.filename, value.content_type, data)
                else:
                    params[name] = tg.decode_param(name, str(value))
        return params, files

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            call = self.record(method, {}, {})  # the token itself is never kept
            return self._answer(call, 401, tg.ApiError(401, "Unauthorized").body())
        params, files = await self._read_params(request)
        call = self.record(method, params, files)
        try:
            with self._lock:
                scripted = self._scripted.get(method.lower())
                if scripted:
                    raise scripted.popleft()
            handler = {**self.handlers(), **self.webhook_handlers()}.get(method.lower())
            if handler is None:
                raise tg.ApiError(404, f"Not Found: method {method}")
            if method.lower() == "getupdates":
                result = await self._get_updates(params)
            else:
                with self._lock:
                    result = handler(params, files)
        except tg.ApiError as error:
            return self._answer(call, error.code, error.body())
        except asyncio.CancelledError:  # the client went away (handler_cancellation)
            self.answered(call, CLIENT_GONE, {"ok": False, "description": "client gone"})
            raise
        return self._answer(call, 200, {"ok": True, "result": result})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, float(params.get("timeout", 0)))
        limit = max(1, min(100, int(params.get("limit", 100))))
        allowed = params.get("allowed_updates") or None
        with self._lock:
            self.check_no_webhook()
            self._confirm(params.get("offset"))
            if self._poll is not None:  # Telegram allows one poll at a time
                self._poll.superseded = True
                self._poll.wake.set()
            poll = self._poll = _Poll(asyncio.Event())
        try:
            while True:
                with self._lock:
                    if poll.superseded:
                        raise tg.ApiError(409, "Conflict: terminated by other getUpdates "
                                          "request; make sure that only one bot instance "
                                          "is running")  # fmt: skip
                    wanted = [u for u in self._updates
                              if allowed is None or tg.update_kind(u) in allowed]  # fmt: skip
                    batch = wanted[:limit]
                    if batch:
                        self.deliveries.append([u["update_id"] for u in batch])
                        return batch
                    poll.wake.clear()  # before awaiting: a push after the check wakes us
                remaining = deadline - loop.time()
                if remaining <= 0 or self._closing:
                    return []
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(poll.wake.wait(), remaining)
        finally:
            with self._lock:
                if self._poll is poll:
                    self._poll = None

    def _confirm(self, offset: Any) -> None:
        if isinstance(offset, int) and offset < 0:  # the last -offset updates; older ones go
            self._updates = self._updates[offset:]
        elif isinstance(offset, int):
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

    def _wake_poll(self) -> None:
        if self._poll is not None:
            self._poll.wake.set()

    def _wake(self) -> None:
        """A new update: for the long poll in flight, or for the webhook."""
        self._wake_poll()
        self._webhook_changed.set()

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(tg.ApiError(401, "Unauthorized").body(), status=401)
        path = request.match_info["path"]
        with self._lock:
            stored = next((f for f in self.files.values() if f.file_path == path), None)
        if stored is None:
            return web.json_response(tg.ApiError(404, "Not Found").body(), status=404)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # -- start and stop ---------------------------------------------------------------------

    async def _start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)  # Telegram's upload limit
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        # No access log: every path holds the token. handler_cancellation ends a long poll
        # whose client hung up (PTB cancels its pending getUpdates when it stops).
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._delivery = asyncio.get_running_loop().create_task(self.deliver_updates())

    async def _stop(self) -> None:
        assert self._runner is not None
        self._closing = True
        self._wake_poll()
        if self._delivery is not None:
            self._delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery
        await self._runner.cleanup()

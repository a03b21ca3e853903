"""A fake Discord (HTTP API v10, gateway, CDN) on 127.0.0.1, for the real discord.py.

An aiohttp app in a thread of its own; tests drive it from their own event loop::

    fake = FakeDiscord()
    with fake.serving(), fake.pointing():
        async def scenario():
            async with fake.running(bot):  # bot.start(token) until READY; close() after
                ask = await fake.user_runs_slash_command("edit", {"image": ("a.png", png),
                                                                  "text": "smile"})
                answer = await fake.wait_for("POST", ask.callback_path)
        asyncio.run(scenario())

Playing users (each sends the dispatch Discord would send and returns it or the
:class:`InteractionRecord` with ``callback_path`` and ``webhook_path``):
``user_sends_dm(text, *, user_id, attachments)``, ``user_sends_channel_message(text, *,
user_id, channel_id, attachments, mentions_bot)``, ``user_runs_slash_command(name,
options, *, user_id, channel_id, in_dm)`` (the command must be registered; attachment
options take ``(filename, bytes, content_type)``), ``user_clicks_button(message_id,
custom_id, *, user_id)`` (the button must be on the message) and ``ask_to_reconnect()``.
Waiting, event-driven, with a timeout that fails the test with what did happen:
``wait_for(method, path_glob, *, where, since, timeout)``, ``wait_for_gateway(op)``,
``wait_until_connected()``, ``wait_until_disconnected()``. ``fake.world`` holds the IDs
(``bot_id``, ``application_id``, ``guild_id``, ``channel_id``); users are made on use.

Pointing discord.py at it: discord.py 2.7.1 has no documented setting for its endpoints,
only two class constants, which :meth:`FakeDiscord.pointing` swaps and puts back.
``discord.http.Route.BASE`` ("https://discord.com/api/v10") prefixes every API route, the
interaction callback and webhook routes included (discord.py rewrites it itself in
``_set_api_version``); attachments are fetched from the URLs the API hands out.
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` is where a plain ``Client``
connects: it never asks GET /gateway/bot (only ``AutoShardedClient`` does); reconnects
go to READY's ``resume_gateway_url``. So a product setting for the API base
(``bots.discord_base_url``) must set ``Route.BASE`` before login and ``DEFAULT_GATEWAY``
to the URL GET /gateway/bot names, e.g. in ``setup_hook``
(``test_one_base_url_setting_is_enough`` does exactly that).

HTTP routes, under /api/v10: GET /gateway, /gateway/bot, /users/@me, /users/{id},
/oauth2/applications/@me, /applications/@me; POST /users/@me/channels (open a DM);
GET and PUT /applications/{app}/commands and /applications/{app}/guilds/{guild}/commands;
POST /interactions/{id}/{token}/callback (types 4, 5, 6, 7, 9; JSON or multipart);
POST /webhooks/{app}/{token} (followups); GET, PATCH, DELETE /webhooks/{app}/{token}/
messages/{id or @original}; GET /channels/{id}; POST /channels/{id}/messages; GET, PATCH,
DELETE /channels/{id}/messages/{id}; POST /channels/{id}/typing. The CDN, GET
/attachments/... and /ephemeral-attachments/..., serves every file a user or the bot
attached. A wrong bot token gets 401 (discord.py raises LoginFailure), unknown routes
Discord's 404 JSON; other errors carry Discord's JSON codes (discord_world.py and
discord_interactions.py say which). Gateway ops: see discord_gateway.py.

Recorded, in order: every HTTP request (``requests``: method, path without /api/v10,
query, JSON or multipart ``payload_json``, uploaded files with bytes, filename and
content type, the status and JSON answered, whether the bot token matched), those to
unknown routes (``unknown_requests``), every gateway frame the bot sent
(``gateway_frames``, tokens redacted), every websocket URL opened
(``gateway_connections``) and every event held back (``undelivered``, with the reason).
The messages as they now are: ``message(id)``, ``messages_in(channel_id)``; registered
commands: ``commands(guild_id=None)``; DM channels: ``dm_channel_id(user_id)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fnmatch
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import discord
import yarl
from aiohttp import web

from tests.fakes.discord_gateway import Gateway, GatewayFrame
from tests.fakes.discord_interactions import InteractionRecord, Interactions
from tests.fakes.discord_rest import (
    API_PREFIX,
    BODY,
    UPLOADS,
    RestApi,
    error_body,
    json_of,
    json_response,
    parse_body,
)
from tests.fakes.discord_world import DiscordError, DiscordWorld, Upload
from tests.fakes.discord_world import as_upload as _as_upload

_log = logging.getLogger(__name__)
DEFAULT_USER_ID = 412345678901234567
Attachment = Upload | tuple[str, bytes, str] | tuple[str, bytes]


@dataclass(frozen=True)
class RecordedRequest:
    index: int
    method: str
    path: str  # without /api/v10, e.g. "/channels/1/messages"; CDN paths as they are
    query: dict[str, str]
    json: Any  # the JSON body, or a multipart body's payload_json
    files: tuple[Upload, ...]
    status: int
    authorized: bool | None  # the bot token matched; None: no Authorization header sent
    known_route: bool
    response: Any = None  # the JSON the fake answered, if any


class FakeDiscord:
    """Start with :meth:`serving` (a context manager); point discord.py with :meth:`pointing`."""

    def __init__(self, *, token: str = "fake-bot-token", ack_deadline_s: float | None = 3.0):
        self.world = DiscordWorld(token=token)
        self.interactions = Interactions(self.world, ack_deadline_s)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self.gateway = Gateway(self.world, self._lock, self._bump)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self.port = 0

    # -- addresses and what was recorded ------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be."""
        return self.url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return self.gateway.url

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def unknown_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if not r.known_route]

    @property
    def gateway_frames(self) -> list[GatewayFrame]:
        with self._lock:
            return list(self.gateway.frames)

    @property
    def gateway_connections(self) -> list[str]:
        with self._lock:
            return list(self.gateway.connections)

    @property
    def undelivered(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.gateway.undelivered)

    def message(self, message_id: int | str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.world.message(int(message_id)))

    def messages_in(self, channel_id: int | str) -> list[dict[str, Any]]:
        with self._lock:
            found = [m for m in self.world.messages.values() if m["channel_id"] == str(channel_id)]
            return copy.deepcopy(found)

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The application commands registered globally, or in ``guild_id``."""
        with self._lock:
            return copy.deepcopy(self.world.commands.get(guild_id, []))

    def dm_channel_id(self, user_id: int = DEFAULT_USER_ID) -> int | None:
        with self._lock:
            found = self.world.dm_by_user.get(user_id)
        return found

    # -- the server ---------------------------------------------------------------------
    @web.middleware
    async def _record(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path in ("/gateway", "/gateway-resume"):
            return await handler(request)
        request[BODY], request[UPLOADS] = await parse_body(request)
        path = request.path.removeprefix(API_PREFIX)
        header = request.headers.get("Authorization")
        authorized = None if header is None else header == f"Bot {self.world.token}"
        known = not isinstance(request.match_info.http_exception, web.HTTPException)
        bot_route = request.path.startswith(API_PREFIX) and not path.startswith(
            ("/interactions/", "/webhooks/", "/gateway")
        )
        if not known:
            status = 404 if isinstance(request.match_info.http_exception, web.HTTPNotFound) else 405
            response: web.StreamResponse = json_response(error_body(status), status=status)
        elif bot_route and not authorized:
            response = json_response(error_body(401), status=401)
        else:
            try:
                response = await handler(request)
            except DiscordError as exc:
                response = json_response(exc.body(), status=exc.status)
            except Exception as exc:  # a gap in the fake: say so at once (a 5xx is retried)
                _log.exception("the fake Discord failed on %s %s", request.method, path)
                failure = {"message": f"the fake Discord failed: {exc!r}", "code": 0}
                response = json_response(failure, status=400)
        body = request[BODY]
        with self._lock:
            index = len(self._requests)
            self._requests.append(RecordedRequest(
                index, request.method, path, dict(request.query), body,
                tuple(request[UPLOADS]), response.status, authorized, known, json_of(response),
            ))  # fmt: skip
        self._bump()
        return response

    def _bump(self) -> None:
        """Wake every waiter: something was recorded or changed."""
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def _start(self) -> web.AppRunner:
        self._changed = asyncio.Event()
        app = web.Application(middlewares=[self._record], client_max_size=64 * 1024 * 1024)
        app.add_routes(RestApi(self.world, self.interactions, self.gateway, self._lock).routes())
        app.add_routes([web.get("/gateway", self.gateway.handle),
                        web.get("/gateway-resume", self.gateway.handle)])  # fmt: skip
        runner = web.AppRunner(app, shutdown_timeout=1.0, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self.world.cdn_base = self.url
        self.gateway.url = f"ws://127.0.0.1:{self.port}/gateway"
        self.gateway.resume_url = f"ws://127.0.0.1:{self.port}/gateway-resume"
        return runner

    @contextlib.contextmanager
    def serving(self) -> Iterator[FakeDiscord]:
        """Run the fake in a thread of its own until the block ends."""
        loop = asyncio.new_event_loop()
        runner = loop.run_until_complete(self._start())
        self._loop = loop
        thread = threading.Thread(target=loop.run_forever, name="fake-discord", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self._stop(runner), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            self._loop = None

    async def _stop(self, runner: web.AppRunner) -> None:
        await self.gateway.close_all()
        await runner.cleanup()

    @contextlib.contextmanager
    def pointing(self) -> Iterator[None]:
        """Point discord.py's API base and gateway at this fake, and back afterwards."""
        route, gateway = discord.http.Route, discord.gateway.DiscordWebSocket
        old = route.BASE, gateway.DEFAULT_GATEWAY
        route.BASE, gateway.DEFAULT_GATEWAY = self.api_base, yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            route.BASE, gateway.DEFAULT_GATEWAY = old

    async def _call(self, coro: Any) -> Any:
        """Run ``coro`` on the fake's loop and await it from the test's loop."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the fake Discord is not serving")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    # -- waiting --------------------------------------------------------------------------
    async def _until(self, check: Callable[[], Any], timeout: float, what: Callable[[], str]):
        assert self._changed is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while (found := check()) is None:
            changed = self._changed
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(what())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
        return found

    async def wait_for(
        self,
        method: str,
        path: str = "*",
        *,
        where: Callable[[RecordedRequest], bool] | None = None,
        since: int = 0,
        timeout: float = 5.0,
    ) -> RecordedRequest:
        """The first request from index ``since`` on that matches; ``path`` may use * globs."""

        def check() -> RecordedRequest | None:
            for request in self.requests[since:]:
                matches = request.method == method and fnmatch.fnmatchcase(request.path, path)
                if matches and (where is None or where(request)):
                    return request
            return None

        def what() -> str:
            seen = [f"{r.method} {r.path} -> {r.status}" for r in self.requests]
            return (f"no {method} {path} within {timeout} s; requests: {seen}; "
                    f"undelivered events: {self.undelivered}")  # fmt: skip

        return await self._call(self._until(check, timeout, what))

    async def wait_for_gateway(self, op: int, *, since: int = 0, timeout: float = 5.0):
        """The first frame with ``op`` the bot sent from index ``since`` on."""
        frames = lambda: self.gateway_frames[since:]  # noqa: E731
        check = lambda: next((f for f in frames() if f.op == op), None)  # noqa: E731
        what = lambda: f"the bot sent no op {op}; it sent {[f.op for f in frames()]}"  # noqa: E731
        return await self._call(self._until(check, timeout, what))

    async def wait_until_connected(self, timeout: float = 10.0) -> None:
        """Until a bot has identified and got READY and GUILD_CREATE (or resumed)."""
        check = lambda: True if self.gateway.connected else None  # noqa: E731
        what = lambda: f"no bot connected; frames: {self.gateway_frames}"  # noqa: E731
        await self._call(self._until(check, timeout, what))

    async def wait_until_disconnected(self, timeout: float = 5.0) -> None:
        """Until no websocket to the gateway is open (the bot has closed)."""
        check = lambda: True if not self.gateway.open_connections else None  # noqa: E731
        what = lambda: f"{self.gateway.open_connections} gateway connection(s) still open"  # noqa: E731
        await self._call(self._until(check, timeout, what))

    @contextlib.asynccontextmanager
    async def running(
        self, client: discord.Client, token: str | None = None, timeout: float = 10.0
    ) -> AsyncIterator[discord.Client]:
        """``client.start()`` until connected (its error if it fails), ``close()`` afterwards."""
        started = asyncio.ensure_future(client.start(self.world.token if token is None else token))
        connected = asyncio.ensure_future(self.wait_until_connected(timeout))
        try:
            await asyncio.wait({started, connected}, return_when=asyncio.FIRST_COMPLETED)
            if started.done():
                started.result()  # raises what stopped the bot
                raise AssertionError("the bot stopped before it connected")
            connected.result()
            yield client
        finally:
            connected.cancel()
            await client.close()
            await asyncio.wait({started})
        started.result()  # a bot that failed while the test ran fails the test

    def replace_components(self, message_id: int | str, components: list[dict[str, Any]]):
        """Give a message other components, e.g. the buttons an older version of the bot
        sent."""
        with self._lock:
            self.world.message(int(message_id))["components"] = copy.deepcopy(components)

    def remove_file(self, url: str) -> None:
        """Take a file off the CDN (it answers 404 from now on), as when its message is
        deleted."""
        with self._lock:
            del self.world.files[yarl.URL(url).path]

    # -- playing users --------------------------------------------------------------------
    async def user_sends_dm(
        self, text: str = "", *, user_id: int = DEFAULT_USER_ID,
        attachments: Sequence[Attachment] = (),
    ) -> dict[str, Any]:  # fmt: skip
        """MESSAGE_CREATE in the user's DM with the bot; returns the message."""
        return await self._call(self._user_message(text, user_id, None, attachments, ()))

    async def user_sends_channel_message(
        self, text: str = "", *, user_id: int = DEFAULT_USER_ID, channel_id: int | None = None,
        attachments: Sequence[Attachment] = (), mentions_bot: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """MESSAGE_CREATE in a guild channel (the test guild's text channel by default)."""
        mentions = (self.world.bot_id,) if mentions_bot else ()
        channel = channel_id or self.world.channel_id
        return await self._call(self._user_message(text, user_id, channel, attachments, mentions))

    async def _user_message(self, text, user_id, channel_id, attachments, mentions):
        with self._lock:
            if channel_id is None:
                channel_id = int(self.world.dm_channel(user_id)["id"])
            uploads = [_as_upload(a) for a in attachments]
            message = self.world.post_message(channel_id, {"content": text}, uploads,
                                              author_id=user_id)  # fmt: skip
            message["mentions"] = [self.world.user(m) for m in mentions]
        await self.gateway.dispatch("MESSAGE_CREATE", message)
        return copy.deepcopy(message)

    async def user_runs_slash_command(
        self, name: str, options: dict[str, Any] | None = None, *,
        user_id: int = DEFAULT_USER_ID, channel_id: int | None = None, in_dm: bool = False,
    ) -> InteractionRecord:  # fmt: skip
        """INTERACTION_CREATE (type 2) for a registered command; attachment options take
        ``(filename, bytes, content_type)`` and arrive in ``resolved.attachments``."""

        async def run() -> InteractionRecord:
            with self._lock:
                channel = channel_id or (
                    int(self.world.dm_channel(user_id)["id"]) if in_dm else self.world.channel_id
                )
                record, payload = self.interactions.slash_command(
                    name, options or {}, user_id, channel
                )
            await self.gateway.dispatch("INTERACTION_CREATE", payload)
            return copy.copy(record)

        return await self._call(run())

    async def user_clicks_button(
        self, message_id: int | str, custom_id: str, *, user_id: int = DEFAULT_USER_ID
    ) -> InteractionRecord:
        """INTERACTION_CREATE (type 3) for a button on a message the bot sent."""

        async def run() -> InteractionRecord:
            with self._lock:
                record, payload = self.interactions.button_click(
                    int(message_id), custom_id, user_id
                )
            await self.gateway.dispatch("INTERACTION_CREATE", payload)
            return copy.copy(record)

        return await self._call(run())

    async def ask_to_reconnect(self) -> None:
        """Send RECONNECT (op 7): the bot must resume on ``resume_gateway_url``."""
        await self._call(self.gateway.reconnect())

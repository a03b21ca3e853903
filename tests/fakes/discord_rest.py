"""The fake Discord's HTTP API v10 routes and its CDN, as aiohttp handlers.

Handlers read the parsed body that discord_server.py's middleware left on the request
(``request[BODY]``: the JSON, or a multipart request's ``payload_json``;
``request[UPLOADS]``: its files), change the :class:`DiscordWorld` under the shared
lock, send the gateway events Discord would send, and answer Discord's JSON (or its
error JSON, from :class:`DiscordError`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from aiohttp import web

from tests.fakes.discord_gateway import Gateway
from tests.fakes.discord_interactions import InteractionRecord, Interactions
from tests.fakes.discord_world import DiscordError, DiscordWorld, Event, Upload

API_PREFIX = "/api/v10"
BODY = web.RequestKey("body", Any)  # the JSON body, or a multipart body's payload_json
UPLOADS = web.RequestKey("uploads", list)  # files of a multipart body


def json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": discord.py compares the whole header (no charset) and
    # hands anything else back as text.
    body = json.dumps(data).encode()
    return web.Response(body=body, status=status, headers={"Content-Type": "application/json"})


def _id(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise DiscordError(400, 50035, f"Invalid Form Body: {name} is not a snowflake") from None


class RestApi:
    def __init__(
        self,
        world: DiscordWorld,
        interactions: Interactions,
        gateway: Gateway,
        lock: threading.Lock,
    ) -> None:
        self.world, self.interactions, self.gateway, self.lock = world, interactions, gateway, lock

    def routes(self) -> list[web.RouteDef]:
        a = API_PREFIX
        webhook = a + "/webhooks/{app_id}/{token}"
        message = a + "/channels/{channel_id}/messages/{message_id}"
        return [
            web.get(a + "/gateway", self.gateway_url),
            web.get(a + "/gateway/bot", self.gateway_bot),
            web.get(a + "/users/@me", self.me),
            web.post(a + "/users/@me/channels", self.open_dm),
            web.get(a + "/users/{user_id}", self.get_user),
            web.get(a + "/oauth2/applications/@me", self.app_info),
            web.get(a + "/applications/@me", self.app_info),
            web.get(a + "/applications/{app_id}/commands", self.get_commands),
            web.put(a + "/applications/{app_id}/commands", self.put_commands),
            web.get(a + "/applications/{app_id}/guilds/{guild_id}/commands", self.get_commands),
            web.put(a + "/applications/{app_id}/guilds/{guild_id}/commands", self.put_commands),
            web.post(a + "/interactions/{interaction_id}/{token}/callback", self.callback),
            web.post(webhook, self.followup),
            web.get(webhook + "/messages/{message_id}", self.webhook_message),
            web.patch(webhook + "/messages/{message_id}", self.webhook_message),
            web.delete(webhook + "/messages/{message_id}", self.webhook_message),
            web.get(a + "/channels/{channel_id}", self.get_channel),
            web.post(a + "/channels/{channel_id}/messages", self.post_message),
            web.get(message, self.channel_message),
            web.patch(message, self.channel_message),
            web.delete(message, self.channel_message),
            web.post(a + "/channels/{channel_id}/typing", self.typing),
            web.get("/attachments/{channel_id}/{attachment_id}/{filename}", self.cdn),
            web.get("/ephemeral-attachments/{channel_id}/{attachment_id}/{filename}", self.cdn),
        ]

    async def _announce(self, *events: Event) -> None:
        for event, data in events:
            await self.gateway.dispatch(event, data)

    # -- gateway, users, application ------------------------------------------------------
    async def gateway_url(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway.url})

    async def gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}
        return json_response({"url": self.gateway.url, "shards": 1, "session_start_limit": limit})

    async def me(self, request: web.Request) -> web.Response:
        return json_response(self.world.bot_user)

    async def get_user(self, request: web.Request) -> web.Response:
        # Every user exists on Discord: an ID the fake has not seen yet becomes one.
        with self.lock:
            user = self.world.user(_id(request, "user_id"))
        return json_response(user)

    async def open_dm(self, request: web.Request) -> web.Response:
        recipient = int((request[BODY] or {}).get("recipient_id", 0))
        if recipient == self.world.bot_id:
            raise DiscordError(400, 50007, "Cannot send messages to this user")
        with self.lock:
            channel = self.world.dm_channel(recipient)
        return json_response(channel)

    async def app_info(self, request: web.Request) -> web.Response:
        return json_response(self.world.app_info())

    def _scope(self, request: web.Request) -> int | None:
        if _id(request, "app_id") != self.world.application_id:
            raise DiscordError(404, 10002, "Unknown Application")
        return _id(request, "guild_id") if "guild_id" in request.match_info else None

    async def get_commands(self, request: web.Request) -> web.Response:
        return json_response(self.world.commands.get(self._scope(request), []))

    async def put_commands(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        with self.lock:
            registered = self.world.register_commands(scope, request[BODY] or [])
        return json_response(registered)

    # -- interactions -------------------------------------------------------------------
    async def callback(self, request: web.Request) -> web.Response:
        with self.lock:
            answer, events = self.interactions.respond(
                _id(request, "interaction_id"), request.match_info["token"],
                request[BODY] or {}, request[UPLOADS],
            )  # fmt: skip
        await self._announce(*events)
        if request.query.get("with_response") in ("1", "true", "True"):
            return json_response(answer)
        return web.Response(status=204)

    def _by_token(self, request: web.Request) -> InteractionRecord:
        return self.interactions.by_token(_id(request, "app_id"), request.match_info["token"])

    async def followup(self, request: web.Request) -> web.Response:
        with self.lock:
            record = self._by_token(request)
            message, event = self.interactions.followup(
                record, request[BODY] or {}, request[UPLOADS]
            )
        await self._announce(event)
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(message)
        return web.Response(status=204)

    async def webhook_message(self, request: web.Request) -> web.Response:
        with self.lock:
            record = self._by_token(request)
            message_id = self.interactions.webhook_message_id(
                record, request.match_info["message_id"]
            )
        return await self._message(request, message_id)

    # -- channels and messages ----------------------------------------------------------
    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self.world.channel(_id(request, "channel_id")))

    async def post_message(self, request: web.Request) -> web.Response:
        with self.lock:
            message = self.world.post_message(
                _id(request, "channel_id"), request[BODY] or {}, request[UPLOADS]
            )
        await self._announce(("MESSAGE_CREATE", message))
        return json_response(message)

    async def channel_message(self, request: web.Request) -> web.Response:
        message_id = _id(request, "message_id")
        if self.world.message(message_id)["channel_id"] != request.match_info["channel_id"]:
            raise DiscordError(404, 10008, "Unknown Message")
        return await self._message(request, message_id)

    async def _message(self, request: web.Request, message_id: int) -> web.Response:
        """GET, PATCH or DELETE one message (by channel route or by interaction webhook)."""
        if request.method == "GET":
            return json_response(self.world.message(message_id))
        if request.method == "DELETE":
            with self.lock:
                event = self.world.delete_message(message_id)
            await self._announce(event)
            return web.Response(status=204)
        with self.lock:
            message = self.world.edit_message(message_id, request[BODY] or {}, request[UPLOADS])
        await self._announce(("MESSAGE_UPDATE", message))
        return json_response(message)

    async def typing(self, request: web.Request) -> web.Response:
        self.world.channel(_id(request, "channel_id"))
        return web.Response(status=204)

    async def cdn(self, request: web.Request) -> web.Response:
        stored = self.world.files.get(request.path)
        if stored is None:
            return web.Response(status=404, text="Not Found")
        data, content_type = stored
        return web.Response(body=data, content_type=content_type)


def error_body(status: int) -> dict[str, Any]:
    """Discord's body for an HTTP-level error such as an unknown route."""
    reasons = {401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}
    return {"message": f"{status}: {reasons.get(status, 'Error')}", "code": 0}


def json_of(response: web.StreamResponse) -> Any:
    if isinstance(response, web.Response) and response.content_type == "application/json":
        return json.loads(response.body)  # type: ignore[arg-type]
    return None


async def parse_body(request: web.Request) -> tuple[Any, list[Upload]]:
    """The JSON body (or a multipart body's payload_json) and the files uploaded."""
    if request.content_type == "multipart/form-data":
        body, uploads = None, []
        async for part in await request.multipart():
            data = await part.read()  # type: ignore[union-attr]
            if part.name == "payload_json":
                body = json.loads(data)
            else:
                kind = part.headers.get("Content-Type", "application/octet-stream")
                uploads.append(Upload(part.filename or "", bytes(data), kind, part.name or ""))
        return body, uploads
    text = await request.text() if request.can_read_body else ""
    try:
        return (json.loads(text) if text else None), []
    except ValueError:
        return text, []  # recorded as it came; handlers that need JSON refuse it

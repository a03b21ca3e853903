"""The fake Discord gateway: one websocket endpoint speaking gateway v10 with JSON.

On connect it sends HELLO (op 10). It answers HEARTBEAT (1) with HEARTBEAT_ACK (11).
IDENTIFY (2) is checked (a wrong token closes with 4004, missing intents with 4013) and
answered with the READY and GUILD_CREATE dispatches. RESUME (6) of the current session
replays the dispatches it missed, then RESUMED; an unknown session gets INVALID_SESSION
(9, not resumable). A test can send RECONNECT (7). Other ops are recorded, not answered.

Frames go out as text, or as one zlib stream of binary frames when the URL asks for
``compress=zlib-stream`` (discord.py does unless zstandard is installed; for
``zstd-stream`` the fake sends text, which discord.py accepts too).
Message events honour the session's intents as Discord does: no DM events without
DIRECT_MESSAGES, no guild message events without GUILD_MESSAGES, empty content in guild
messages from others without MESSAGE_CONTENT, and ephemeral messages never; what was
held back is listed in ``undelivered`` with the reason.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes import discord_payloads as p
from tests.fakes.discord_world import DiscordWorld

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT = 0, 1, 2, 6, 7
INVALID_SESSION, HELLO, HEARTBEAT_ACK = 9, 10, 11


@dataclass(frozen=True)
class GatewayFrame:
    """A frame the bot sent; a token in it is replaced by ``<redacted>``."""

    index: int
    op: int
    data: Any
    url: str  # path and query of the websocket it came on


@dataclass(eq=False)  # compared and hashed by identity
class _Connection:
    ws: web.WebSocketResponse
    compressor: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, payload: dict[str, Any]) -> bool:
        raw = json.dumps(payload)
        # One lock: frames of a zlib stream must leave in the order they were compressed.
        async with self.lock:
            try:
                if self.compressor is None:
                    await self.ws.send_str(raw)
                else:
                    chunk = self.compressor.compress(raw.encode())
                    await self.ws.send_bytes(chunk + self.compressor.flush(zlib.Z_SYNC_FLUSH))
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                return False
        return True


@dataclass
class _Session:
    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)  # dispatches, for RESUME
    conn: _Connection | None = None
    ready: bool = False


class Gateway:
    def __init__(
        self, world: DiscordWorld, lock: threading.Lock, on_change: Callable[[], None]
    ) -> None:
        self.world = world
        self.heartbeat_interval_ms = 41250
        self.url = self.resume_url = ""  # set by the server once it has a port
        self.frames: list[GatewayFrame] = []
        self.connections: list[str] = []  # path and query of each websocket opened
        self.undelivered: list[tuple[str, str]] = []  # event, why it was not sent
        self.session: _Session | None = None
        self._open: set[_Connection] = set()
        self._lock = lock
        self._on_change = on_change

    @property
    def connected(self) -> bool:
        return self.session is not None and self.session.ready and self.session.conn is not None

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        wants_zlib = request.query.get("compress") == "zlib-stream"
        conn = _Connection(ws, zlib.compressobj() if wants_zlib else None)
        self._open.add(conn)
        with self._lock:
            self.connections.append(str(request.rel_url))
        self._on_change()
        hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ['["gateway-fake"]']}
        await conn.send({"op": HELLO, "d": hello, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._received(conn, json.loads(msg.data), str(request.rel_url))
        finally:
            self._open.discard(conn)
            if self.session is not None and self.session.conn is conn:
                self.session.conn = None
            self._on_change()
        return ws

    async def _received(self, conn: _Connection, frame: dict[str, Any], url: str) -> None:
        op, data = frame.get("op"), frame.get("d")
        shown = data
        if isinstance(data, dict) and "token" in data:
            shown = {**data, "token": "<redacted>"}
        with self._lock:
            self.frames.append(GatewayFrame(len(self.frames), op, shown, url))
        self._on_change()
        if op == HEARTBEAT:
            await conn.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == IDENTIFY:
            await self._identify(conn, data)
        elif op == RESUME:
            await self._resume(conn, data)

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        if data.get("token") != self.world.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        if not isinstance(data.get("intents"), int):
            await conn.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        if self.session is not None and self.session.conn is not None:
            await self.session.conn.ws.close(code=4000)  # one bot at a time
        session = _Session(secrets.token_hex(16), data["intents"], data.get("shard"), conn=conn)
        self.session = session
        ready: dict[str, Any] = {
            "v": 10, "user": self.world.bot_user, "session_id": session.id,
            "session_type": "normal", "resume_gateway_url": self.resume_url,
            "guilds": [{"id": str(self.world.guild_id), "unavailable": True}],
            "application": {"id": str(self.world.application_id), "flags": 0},
            "private_channels": [], "relationships": [], "presences": [],
            "guild_join_requests": [], "user_settings": {}, "geo_ordered_rtc_regions": [],
            "_trace": ['["gateway-fake"]'],
        }  # fmt: skip
        if session.shard is not None:
            ready["shard"] = session.shard
        await self.dispatch("READY", ready)
        await self.dispatch("GUILD_CREATE", self.world.guild_create())
        session.ready = True
        self._on_change()

    async def _resume(self, conn: _Connection, data: dict[str, Any]) -> None:
        if data.get("token") != self.world.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        session = self.session
        if session is None or data.get("session_id") != session.id:
            await conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        session.conn = conn
        seen = data.get("seq") or 0
        for frame in [f for f in session.sent if f["s"] > seen]:
            await conn.send(frame)
        await self.dispatch("RESUMED", {"_trace": ['["gateway-fake"]']})
        self._on_change()

    def _for_session(self, event: str, data: dict[str, Any], intents: int):
        """``data`` as this session may see it, or None and why not."""
        if not event.startswith("MESSAGE_"):
            return data, ""
        if data.get("flags", 0) & p.EPHEMERAL:
            return None, "ephemeral messages are not sent on the gateway"
        dm = "guild_id" not in data
        needed, name = (
            (p.INTENT_DIRECT_MESSAGES, "DIRECT_MESSAGES")
            if dm
            else (p.INTENT_GUILD_MESSAGES, "GUILD_MESSAGES")
        )
        if not intents & needed:
            return None, f"the bot did not ask for the {name} intent"
        bot_id = str(self.world.bot_id)
        mentioned = any(u.get("id") == bot_id for u in data.get("mentions", []))
        by_bot = data.get("author", {}).get("id") == bot_id
        hidden = not (dm or by_bot or mentioned or intents & p.INTENT_MESSAGE_CONTENT)
        if event != "MESSAGE_DELETE" and hidden:
            data = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
        return data, ""

    async def dispatch(self, event: str, data: dict[str, Any]) -> bool:
        """Send a dispatch to the bot's session; False (and why, in ``undelivered``) if not."""
        session = self.session
        if session is None:
            why = "no bot has identified on the gateway"
        else:
            shown, why = self._for_session(event, data, session.intents)
            if shown is not None:
                session.seq += 1
                frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": shown}
                session.sent.append(frame)
                # While the bot reconnects, the frame waits in ``sent`` for its RESUME.
                if session.conn is not None and not await session.conn.send(frame):
                    session.conn = None
                return True
        with self._lock:
            self.undelivered.append((event, why))
        self._on_change()
        return False

    async def reconnect(self) -> None:
        """Send RECONNECT (op 7): the bot should come back on resume_gateway_url and RESUME."""
        session = self.session
        if session is None or session.conn is None:
            raise RuntimeError("no bot is connected to the gateway")
        conn, session.conn = session.conn, None
        await conn.send({"op": RECONNECT, "d": None, "s": None, "t": None})

    async def close_all(self) -> None:
        for conn in list(self._open):
            await conn.ws.close(code=1001, message=b"fake Discord stopping")

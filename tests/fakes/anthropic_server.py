"""A fake Anthropic Messages API: an aiohttp app on 127.0.0.1, in a thread of its own.

Tests script what ``POST /v1/messages`` answers, one :class:`Reply` per request, in
order (``server.script(...)``), and read back what the server received
(``server.requests``). Responses are real Messages API JSON, so the real ``anthropic``
SDK parses them. The API key header is never recorded: only whether it matched the
key the test expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from tests.fakes.loop_thread import LoopThreadServer

KEY_HEADERS = ("x-api-key", "authorization")
_ids = itertools.count(1)


@dataclass(frozen=True)
class Reply:
    """One scripted answer: HTTP status, a JSON body (or raw text), headers, a delay first.

    ``release``: when given, the answer waits until the test sets it (or the server stops).
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    release: threading.Event | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """What the server received, and when (``time.monotonic()``); key headers are redacted."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    key_matches: bool | None
    received_at: float


def message(content: list[dict[str, Any]], stop_reason: str = "tool_use") -> dict[str, Any]:
    """A Messages API response body holding ``content`` blocks."""
    return {
        "id": f"msg_fake{next(_ids):04d}",
        "type": "message",
        "role": "assistant",
        "model": "",  # filled in with the requested model
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 120, "output_tokens": 40},
    }


def tool_call(tool_input: Any, name: str = "edit_plan") -> Reply:
    """A tool_use block with ``tool_input`` as given (any JSON: tests send malformed ones too)."""
    block = {"type": "tool_use", "id": f"toolu_fake{next(_ids):04d}", "name": name}
    return Reply(body=message([{**block, "input": tool_input}]))


def plan(
    action: str = "edit",
    edits: list[tuple[str, Any]] | None = None,
    steps: Any = None,
    reply: Any = "Done.",
) -> Reply:
    """A well-formed ``edit_plan`` call; ``edits`` as (attribute, strength) pairs."""
    items = [{"attribute": a, "strength": s} for a, s in edits or []]
    return tool_call({"action": action, "edits": items, "steps": steps, "reply": reply})


def text_only(text: str = "Sure! I would add a smile.") -> Reply:
    """A plain text answer without any tool call."""
    return Reply(body=message([{"type": "text", "text": text}], stop_reason="end_turn"))


def error(status: int, kind: str, headers: dict[str, str] | None = None) -> Reply:
    """An API error in the Messages API's error format."""
    body = {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}
    return Reply(status=status, body=body, headers=headers or {})


def rate_limited(retry_after: str | None = None) -> Reply:
    """HTTP 429, with a ``retry-after`` header when given."""
    return error(429, "rate_limit_error", {"retry-after": retry_after} if retry_after else None)


def server_error(status: int = 500) -> Reply:
    return error(status, "api_error")


def slow(seconds: float, then: Reply | None = None) -> Reply:
    """``then`` (default: a good plan) after ``seconds``: longer than a test's budget."""
    return replace(then or plan(edits=[("smile", 0.5)]), delay_s=seconds)


def raw(text: str, content_type: str = "application/json") -> Reply:
    """A body sent as-is, e.g. JSON that does not parse."""
    return Reply(body=text, headers={"content-type": content_type})


class FakeAnthropicServer(LoopThreadServer):
    """Start with :meth:`start`, stop with :meth:`stop`; ``base_url`` is the SDK's base URL."""

    thread_name = "fake-anthropic"

    def __init__(self, expected_key: str | None = None) -> None:
        self.expected_key = expected_key
        self.requests: list[RecordedRequest] = []
        self.unscripted = 0
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self._script.extend(replies)

    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests]

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        text = await request.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        headers = {
            k.lower(): ("<redacted>" if k.lower() in KEY_HEADERS else v)
            for k, v in request.headers.items()
        }
        # The SDK sends the key as x-api-key or as a bearer token, depending on its version.
        sent = {request.headers.get("x-api-key"), request.headers.get("authorization")}
        expected = {self.expected_key, f"Bearer {self.expected_key}"}
        matches = None if self.expected_key is None else bool(sent & expected)
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.method, request.path, headers, body, matches, time.monotonic()
                )
            )
            reply = self._script.popleft() if self._script else None
            if reply is None:
                self.unscripted += 1
        if reply is None:
            reply = error(500, "api_error")
        if reply.delay_s and self._closing is not None:
            # Cut short when the server stops, so teardown never waits.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), reply.delay_s)
        while reply.release is not None and not reply.release.is_set():
            if self._closing is None or self._closing.is_set():
                break
            await asyncio.sleep(0.01)  # a threading.Event set by the test's thread
        payload = reply.body
        if isinstance(payload, dict) and payload.get("type") == "message":
            payload = {**payload, "model": body.get("model", "") if isinstance(body, dict) else ""}
        headers = {"request-id": f"req_fake{next(_ids):04d}", **reply.headers}
        if isinstance(payload, str):
            return web.Response(status=reply.status, text=payload, headers=headers)
        return web.json_response(payload, status=reply.status, headers=headers)

    async def _start(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        assert self._closing is not None and self._runner is not None
        self._closing.set()
        await self._runner.cleanup()

"""Webhook mode of the fake Bot API, driven by python-telegram-bot's own Bot and
Application: setWebhook and its checks, deliveries with the secret header, retries,
the 409 of getUpdates while a webhook is set, and getWebhookInfo."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import BadRequest, Conflict

from tests.fakes.telegram_server import TOKEN, UNREACHABLE, WEBHOOK, FakeTelegramServer
from tests.fakes.telegram_webhook import free_port
from tests.fakes.test_telegram_server import CHAT, USER, BotUnderTest, build, run


@pytest.fixture
def server() -> Iterator[FakeTelegramServer]:
    with FakeTelegramServer() as fake:
        yield fake


@contextlib.asynccontextmanager
async def bot_of(server: FakeTelegramServer) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.base_file_url) as bot:
        yield bot


@contextlib.asynccontextmanager
async def receiver(statuses: list[int]) -> AsyncIterator[tuple[str, list[web.Request], list]]:
    """A bare webhook endpoint answering ``statuses`` in turn (then 200); yields its URL,
    the requests it got and their JSON bodies."""
    requests: list[web.Request] = []
    bodies: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        requests.append(request)
        bodies.append(await request.json())
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", requests, bodies
    finally:
        await runner.cleanup()


def test_updates_are_posted_with_the_secret_and_retried(server: FakeTelegramServer) -> None:
    async def scenario() -> dict[str, Any]:
        async with bot_of(server) as bot, receiver([500]) as (url, requests, bodies):
            assert await bot.set_webhook(url, secret_token="s3cret_-", allowed_updates=["message"])
            server.push_update({"callback_query": {"id": "1", "data": "x"}})  # not allowed
            update_id = server.user_sends_text(CHAT, USER, "hello")
            first = await server.wait_for(WEBHOOK, update_id=update_id, attempt=1)
            second = await server.wait_for(WEBHOOK, update_id=update_id, attempt=2)
            info = await bot.get_webhook_info()
            return {"first": first, "second": second, "info": info, "update_id": update_id,
                    "requests": requests, "bodies": bodies}  # fmt: skip

    seen = run(scenario())
    assert (seen["first"].status, seen["second"].status) == (500, 200)
    error = "Wrong response from the webhook: 500 Internal Server Error"
    assert seen["first"].response == {"description": error}
    request = seen["requests"][0]
    assert request.headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret_-"
    assert request.headers["Content-Type"] == "application/json"
    hello = seen["bodies"][0]
    assert hello["update_id"] == seen["update_id"] and hello["message"]["text"] == "hello"
    assert seen["bodies"] == [hello, hello]  # the same update again; the callback never sent
    info = seen["info"]
    assert (info.pending_update_count, info.last_error_message) == (0, error)
    assert (info.allowed_updates, info.max_connections) == (("message",), 40)
    assert [c.params["update_id"] for c in server.calls_to(WEBHOOK)] == [seen["update_id"]] * 2


def test_getupdates_conflicts_while_a_webhook_is_set_and_nothing_is_lost(
    server: FakeTelegramServer,
) -> None:
    async def scenario() -> dict[str, Any]:
        async with bot_of(server) as bot:
            await bot.set_webhook(f"http://localhost:{free_port()}/telegram")  # nobody there
            update_id = server.user_sends_text(CHAT, USER, "are you there?")
            await server.wait_for(WEBHOOK, update_id=update_id, attempt=2)
            info = await bot.get_webhook_info()
            with pytest.raises(Conflict, match="can't use getUpdates method while webhook is"):
                await bot.get_updates()
            assert await bot.delete_webhook()
            updates = await bot.get_updates()
            return {"info": info, "updates": updates, "update_id": update_id}

    seen = run(scenario())
    info = seen["info"]
    assert info.url.startswith("http://localhost:") and info.pending_update_count == 1
    assert info.last_error_message == "Connection refused" and info.last_error_date is not None
    assert [u.update_id for u in seen["updates"]] == [seen["update_id"]]
    attempts = [c for c in server.calls_to(WEBHOOK) if c.params["attempt"] <= 2]
    assert [c.status for c in attempts] == [UNREACHABLE, UNREACHABLE]


def test_set_webhook_checks_like_telegram(server: FakeTelegramServer) -> None:
    async def scenario() -> dict[str, Any]:
        refused = {}
        async with bot_of(server) as bot:
            for url, secret in [
                ("http://bot.example.org/hook", None),
                ("https://bot.example.org:8080/hook", None),
                ("https://bot.example.org/hook", None),
                ("http://127.0.0.1:9/hook", "not:allowed"),
            ]:
                with pytest.raises(BadRequest) as caught:
                    await bot.set_webhook(url, secret_token=secret)
                refused[url] = caught.value.message
            server.user_sends_text(CHAT, USER, "old news")
            assert await bot.set_webhook(
                f"http://127.0.0.1:{free_port()}/", drop_pending_updates=True
            )
            set_info = await bot.get_webhook_info()
            assert await bot.set_webhook("")  # an empty URL removes the webhook
            return {"refused": refused, "set": set_info, "unset": await bot.get_webhook_info()}

    seen = run(scenario())
    assert list(seen["refused"].values()) == [
        "Bad webhook: an https url must be provided for webhook",
        "Bad webhook: webhook can be set up only on ports 80, 88, 443 or 8443",
        "Bad webhook: the fake server delivers to 127.0.0.1 only",
        "Secret token contains unallowed characters",
    ]
    assert (seen["set"].pending_update_count, seen["unset"].url) == (0, "")


def test_ptb_webhook_serves_refuses_a_wrong_secret_and_stays_set_after_stop(
    server: FakeTelegramServer,
) -> None:
    """PTB's own webhook server (tornado) behind the fake: ``updater.stop`` stops
    listening but does not delete the webhook."""
    bot = BotUnderTest()
    port = free_port()

    async def scenario() -> dict[str, Any]:
        app = build(server)
        bot.add_to(app)
        async with app:
            await app.start()
            await app.updater.start_webhook(
                listen="127.0.0.1", port=port, url_path="tg",
                webhook_url=f"http://127.0.0.1:{port}/tg", secret_token="right",
            )  # fmt: skip
            async with httpx.AsyncClient() as client:
                forged = await client.post(
                    f"http://127.0.0.1:{port}/tg", headers={"X-Telegram-Bot-Api-Secret-Token":
                    "wrong"}, json={"update_id": 1, "message": {"text": "/echo forged"}},
                )  # fmt: skip
            server.user_sends_command(CHAT, USER, "/echo hi")
            echoed = await server.wait_for("sendMessage")
            stopped_at = len(server.calls)
            await app.updater.stop()
            await app.stop()
        after_stop = server.calls[stopped_at:]  # and shutdown: no deleteWebhook, nothing
        async with bot_of(server) as plain:
            info = await plain.get_webhook_info()
        return {"forged": forged.status_code, "echoed": echoed, "info": info,
                "after_stop": after_stop}  # fmt: skip

    seen = run(scenario())
    assert seen["forged"] == 403 and bot.seen == [server.calls_to(WEBHOOK)[0].params["update_id"]]
    assert seen["echoed"].params["text"] == "hi"
    assert server.calls_to("setWebhook")[0].params["secret_token"] == "right"
    assert seen["after_stop"] == []
    assert seen["info"].url == f"http://127.0.0.1:{port}/tg"
    assert not bot.errors

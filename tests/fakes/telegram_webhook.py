"""Webhook mode of the fake Telegram server: setWebhook, deleteWebhook, getWebhookInfo and
the delivery of updates to the webhook.

As on Telegram: while a webhook is set, getUpdates answers 409 Conflict, and each pending
update is POSTed as JSON to the webhook URL, one at a time and in order, with the header
``X-Telegram-Bot-Api-Secret-Token`` when setWebhook was given a ``secret_token``. An
update stays pending (getWebhookInfo counts it and shows the last error) until the bot
answers 2xx: a refused connection, a timeout or another status is retried after a pause
that grows along ``retry_delays_s`` (the last pause repeats; Telegram's are longer),
sooner after a new setWebhook. Updates of a kind not in ``allowed_updates`` are dropped,
never sent. Like a local Bot API server (and unlike api.telegram.org) the fake takes
``http://`` and any port for 127.0.0.1 and localhost, the only hosts it delivers to.

Each delivery attempt is recorded in the call log as a call to the pseudo-method
:data:`WEBHOOK` with the params ``update_id`` and ``attempt`` (1, 2, ...), answered with
the HTTP status the bot gave, or :data:`UNREACHABLE` when it could not be reached, and
``{"description": <getWebhookInfo's last_error_message>}`` when the attempt failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tests.fakes import telegram_objects as tg
from tests.fakes.telegram_calls import Call, UploadedFile

Params = dict[str, Any]
Files = dict[str, UploadedFile]
WEBHOOK = "webhook"  # the pseudo-method of delivery attempts in the call log
UNREACHABLE = 0  # the status of an attempt that got no HTTP answer
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
TELEGRAM_PORTS = (443, 80, 88, 8443)
DELIVERY_TIMEOUT_S = 10.0
CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
    "delete the webhook first"
)


@dataclass
class Webhook:
    """A webhook as setWebhook set it, and how its deliveries went."""

    url: str
    secret_token: str | None
    allowed_updates: list[str] | None  # None (or empty, as sent): every usual kind
    max_connections: int
    ip_address: str | None
    has_custom_certificate: bool
    last_error_date: int | None = None
    last_error_message: str | None = None


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now: for a bot's webhook server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class WebhookMixin:
    """The webhook methods and the delivery task; :class:`FakeTelegramServer` provides
    the state, the call log and the loop (the task runs there while the server is up)."""

    _lock: threading.RLock
    _updates: list[dict[str, Any]]
    webhook: Webhook | None
    retry_delays_s: tuple[float, ...]
    _webhook_changed: asyncio.Event  # set (on the loop) by push_update and setWebhook
    record: Callable[[str, Params, Files], Call]
    answered: Callable[[Call, int, dict[str, Any]], None]

    def webhook_handlers(self) -> dict[str, Callable[[Params, Files], Any]]:
        return {
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
        }

    def check_no_webhook(self) -> None:
        """getUpdates is refused while a webhook is set (called holding the lock)."""
        if self.webhook is not None:
            raise tg.ApiError(409, CONFLICT)

    # -- methods ----------------------------------------------------------------------------

    def _set_webhook(self, p: Params, f: Files) -> bool:
        url = str(p.get("url", ""))
        if not url:  # an empty URL removes the webhook
            return self._delete_webhook(p, f)
        parts = urlsplit(url)
        local = parts.hostname in LOCAL_HOSTS
        if parts.scheme != "https" and not (local and parts.scheme == "http"):
            raise tg.bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if not local and (parts.port or 443) not in TELEGRAM_PORTS:
            raise tg.bad_request(
                "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
            )
        if not local:
            raise tg.bad_request("bad webhook: the fake server delivers to 127.0.0.1 only")
        secret = p.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise tg.bad_request("secret token contains unallowed characters")
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = Webhook(
            url=url,
            secret_token=None if secret is None else str(secret),
            allowed_updates=p.get("allowed_updates") or None,
            max_connections=int(p.get("max_connections", 40)),
            ip_address=p.get("ip_address"),
            has_custom_certificate="certificate" in f or "certificate" in p,
        )
        self._webhook_changed.set()  # (handlers run on the server's loop)
        return True

    def _delete_webhook(self, p: Params, f: Files) -> bool:
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = None
        self._webhook_changed.set()
        return True

    def _get_webhook_info(self, p: Params, f: Files) -> dict[str, Any]:
        info: dict[str, Any] = {"url": "", "has_custom_certificate": False,
                                "pending_update_count": len(self._updates)}  # fmt: skip
        hook = self.webhook
        if hook is None:
            return info
        info.update(url=hook.url, has_custom_certificate=hook.has_custom_certificate,
                    max_connections=hook.max_connections)  # fmt: skip
        optional = {"ip_address": hook.ip_address, "allowed_updates": hook.allowed_updates,
                    "last_error_date": hook.last_error_date,
                    "last_error_message": hook.last_error_message}  # fmt: skip
        info.update((k, v) for k, v in optional.items() if v is not None)
        return info

    # -- delivery ---------------------------------------------------------------------------

    async def deliver_updates(self) -> None:
        """POST pending updates to the webhook while one is set, forever (until cancelled)."""
        timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S)
        last_id, attempt = None, 0
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                with self._lock:
                    self._webhook_changed.clear()  # before looking: a later change wakes us
                    hook, update = self.webhook, self._next_for_webhook()
                if hook is None or update is None:
                    await self._webhook_changed.wait()
                    continue
                attempt = attempt + 1 if update["update_id"] == last_id else 1
                last_id = update["update_id"]
                params = {"update_id": last_id, "attempt": attempt}
                call = self.record(WEBHOOK, params, {})
                status, error = await _post(session, hook, update)
                with self._lock:
                    if error is None:
                        self._updates = [u for u in self._updates if u["update_id"] != last_id]
                    else:
                        hook.last_error_date, hook.last_error_message = int(time.time()), error
                self.answered(call, status, {} if error is None else {"description": error})
                if error is not None:
                    pause = self.retry_delays_s[min(attempt, len(self.retry_delays_s)) - 1]
                    await self._pause(hook, pause)

    async def _pause(self, hook: Webhook, seconds: float) -> None:
        """Wait before a retry; no longer once setWebhook or deleteWebhook replaced ``hook``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.webhook is hook and (remaining := deadline - loop.time()) > 0:
            self._webhook_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._webhook_changed.wait(), remaining)

    def _next_for_webhook(self) -> dict[str, Any] | None:
        if self.webhook is None:
            return None
        allowed = self.webhook.allowed_updates
        if allowed:
            self._updates = [u for u in self._updates if tg.update_kind(u) in allowed]
        return self._updates[0] if self._updates else None


async def _post(
    session: aiohttp.ClientSession, hook: Webhook, update: dict[str, Any]
) -> tuple[int, str | None]:
    """One delivery: the bot's HTTP status, and the error Telegram would show, if any."""
    headers = {SECRET_HEADER: hook.secret_token} if hook.secret_token else {}
    try:
        async with session.post(hook.url, json=update, headers=headers) as response:
            await response.read()
    except aiohttp.ClientConnectorError:
        return UNREACHABLE, "Connection refused"
    except TimeoutError:
        return UNREACHABLE, "Read timeout expired"
    except aiohttp.ClientError:
        return UNREACHABLE, "Connection reset by peer"
    if 200 <= response.status < 300:
        return response.status, None
    return response.status, f"Wrong response from the webhook: {response.status} {response.reason}"
